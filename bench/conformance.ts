import { mkdtemp, rm } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  FSX_VARIANTS,
  buildSuites,
  fixedFailures,
  pjdfstestFiles,
  ranges,
  readKnownFailures,
  runOnSystem,
  unexpectedFailures,
  updateKnownFailures,
  writeKnownFailures,
  KNOWN_FAILURES_FILE,
  UNEXPLAINED,
  type SystemResults,
} from './lib/conformance.js';
import { installSignalHandlers, isAborting, note, onAbort } from './lib/proc.js';
import { ALLOW_OTHER_ARGS, DRIVERS, Unavailable } from './lib/systems.js';

/**
 * The standard conformance suites against sealfs and gocryptfs in one run (issue 12): pjdfstest
 * (every script) and fsx (five variants, 100,000 operations each), each system mounted for
 * every user (--allow-other) by root with its cipher folder on a tmpfs of its own. Prints the
 * tables the README quotes. The CI subset of the same runs is test/conformance.test.ts.
 *
 * Usage: node dist/bench/conformance.js [--only sealfs,gocryptfs] [--suite pjdfstest,fsx]
 *          [--pjdfstest chmod,link/00.t] [--fsx-ops N] [--seed N] [--parallel] [--write-known] [--json]
 * --parallel runs every system and suite at once, each on a mount of its own (the full run
 * takes about an hour that way instead of two; timing figures then include the contention).
 * --write-known rewrites bench/conformance/known-failures.json from sealfs's pjdfstest results
 * (the list test/conformance.test.ts holds sealfs to), keeping the reasons already written.
 * Needs root. Scratch space: $SEALFS_BENCH_DIR, else os.tmpdir().
 */

const SYSTEMS = ['sealfs', 'gocryptfs'] as const;
type System = (typeof SYSTEMS)[number];
const SUITES = ['pjdfstest', 'fsx'] as const;

interface Options {
  readonly only: readonly System[];
  readonly suites: readonly (typeof SUITES)[number][];
  readonly pjdfstest?: readonly string[];
  readonly fsxOps: number;
  readonly seed: number;
  readonly writeKnown: boolean;
  readonly parallel: boolean;
  readonly json: boolean;
}

function listOption<T extends string>(text: string | undefined, allowed: readonly T[], what: string): T[] {
  if (text === undefined) return [...allowed];
  const items = text.split(',').filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`unknown ${what} ${item} (choose from ${allowed.join(', ')})`);
  return items as T[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      suite: { type: 'string' },
      pjdfstest: { type: 'string' },
      'fsx-ops': { type: 'string', default: '100000' },
      seed: { type: 'string', default: '1' },
      'write-known': { type: 'boolean', default: false },
      parallel: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const fsxOps = Number(values['fsx-ops']);
  const seed = Number(values.seed);
  if (!Number.isInteger(fsxOps) || fsxOps <= 0) throw new Error(`--fsx-ops must be a positive integer, not ${values['fsx-ops']}`);
  if (!Number.isInteger(seed) || seed <= 0) throw new Error(`--seed must be a positive integer, not ${values.seed}`);
  const only = listOption(values.only, SYSTEMS, 'system');
  const suites = listOption(values.suite, SUITES, 'suite');
  if (values['write-known'] && (!only.includes('sealfs') || !suites.includes('pjdfstest'))) throw new Error('--write-known needs sealfs and the pjdfstest suite in the run');
  return {
    only,
    suites,
    ...(values.pjdfstest === undefined ? {} : { pjdfstest: values.pjdfstest.split(',').filter(Boolean) }),
    fsxOps,
    seed,
    writeKnown: values['write-known'],
    parallel: values.parallel,
    json: values.json,
  };
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

function pjdfstestTables(results: ReadonlyMap<System, SystemResults>): string[] {
  const systems = [...results.keys()];
  const lines: string[] = [];
  const cell = (r: SystemResults | undefined, filter: (file: string) => boolean) => {
    const rs = (r?.pjdfstest ?? []).filter((t) => filter(t.file));
    return rs.length === 0 ? '–' : `${sum(rs.map((t) => t.failed.length))} / ${sum(rs.map((t) => t.total))}`;
  };
  lines.push(`| pjdfstest (failed / subtests) | ${systems.join(' | ')} |`, `|---|${systems.map(() => '---:').join('|')}|`);
  const folders = [...new Set(systems.flatMap((s) => results.get(s)!.pjdfstest.map((t) => t.file.split('/')[0]!)))].sort();
  for (const folder of folders) lines.push(`| ${folder} | ${systems.map((s) => cell(results.get(s), (f) => f.startsWith(`${folder}/`))).join(' | ')} |`);
  lines.push(`| **all** | ${systems.map((s) => `**${cell(results.get(s), () => true)}**`).join(' | ')} |`);
  const problems = systems.flatMap((s) => results.get(s)!.pjdfstest.filter((t) => t.problem).map((t) => `${s} ${t.file}: ${t.problem}`));
  if (problems.length > 0) lines.push('', 'Scripts that did not finish normally:', ...problems.map((p) => `- ${p}`));
  return lines;
}

function fsxTable(results: ReadonlyMap<System, SystemResults>, ops: number, seed: number): string[] {
  const systems = [...results.keys()];
  const lines = [`| fsx, ${ops.toLocaleString('en-US')} operations, seed ${seed} | ${systems.join(' | ')} |`, `|---|${systems.map(() => '---').join('|')}|`];
  for (const variant of FSX_VARIANTS) {
    const cells = systems.map((s) => {
      const r = results.get(s)!.fsx.find((f) => f.variant === variant.name);
      return r === undefined ? '–' : `${r.ok ? 'clean' : '**FAILED**'}, ${r.seconds.toFixed(0)} s`;
    });
    if (cells.every((c) => c === '–')) continue;
    lines.push(`| ${variant.name}: ${variant.describe} | ${cells.join(' | ')} |`);
  }
  return lines;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: pjdfstest switches users, and each cipher folder goes on a tmpfs of its own');
  installSignalHandlers();
  const started = process.hrtime.bigint();
  const suites = await buildSuites();
  note(`conformance: suites built in ${suites.pjdfstest}/.. (Linux ${release()})`);
  const files = options.suites.includes('pjdfstest') ? await pjdfstestFiles(suites, options.pjdfstest) : [];
  const variants = options.suites.includes('fsx') ? FSX_VARIANTS : [];
  const work = await mkdtemp(join(resolve(process.env.SEALFS_BENCH_DIR ?? tmpdir()), 'sealfs-conformance-'));
  const removeWork = async () => {
    await rm(work, { recursive: true, force: true });
  };
  const unregister = onAbort(removeWork);
  const results = new Map<System, SystemResults>();
  try {
    // One task per system, or with --parallel one per system and suite, each on its own mount.
    const tasks = options.only.flatMap((name) =>
      options.parallel ? options.suites.map((suite) => ({ name, suite: suite as string })) : [{ name, suite: 'all' }],
    );
    for (const name of options.only) note(`conformance: ${name}: ${DRIVERS[name].describe}; mount flags ${ALLOW_OTHER_ARGS[name].join(' ')}`);
    const runTask = async ({ name, suite }: { name: System; suite: string }): Promise<void> => {
      if (isAborting()) return;
      const driver = DRIVERS[name];
      const phase = process.hrtime.bigint();
      try {
        const r = await runOnSystem((dir) => driver.setup(dir, { allowOther: true }), suites, join(work, `${name}-${suite}`), {
          pjdfstest: suite === 'all' || suite === 'pjdfstest' ? files : [],
          pjdfstestTimeoutMs: 600_000,
          fsxVariants: suite === 'all' || suite === 'fsx' ? variants : [],
          fsxOps: options.fsxOps,
          fsxSeed: options.seed,
          fsxTimeoutMs: 3_600_000,
          progress: (line) => note(`conformance: ${name}: ${line}`),
        });
        const before = results.get(name);
        results.set(name, { pjdfstest: [...(before?.pjdfstest ?? []), ...r.pjdfstest], fsx: [...(before?.fsx ?? []), ...r.fsx] });
      } catch (err) {
        if (isAborting()) return;
        note(`conformance: ${name}: ${err instanceof Unavailable ? 'missing' : 'FAILED'}: ${(err as Error).message}`);
        process.exitCode = 1;
      }
      note(`conformance: ${name} (${suite}): done in ${(Number(process.hrtime.bigint() - phase) / 1e9).toFixed(0)} s`);
    };
    if (options.parallel) await Promise.all(tasks.map(runTask));
    else for (const task of tasks) await runTask(task);
  } finally {
    await removeWork();
    unregister();
  }

  const out = options.json ? note : (line: string) => process.stdout.write(`${line}\n`);
  out('');
  if (files.length > 0) for (const line of pjdfstestTables(results)) out(line);
  out('');
  if (variants.length > 0) for (const line of fsxTable(results, options.fsxOps, options.seed)) out(line);

  const sealfs = results.get('sealfs');
  if (sealfs && files.length > 0) {
    const known = await readKnownFailures();
    const unexpected = unexpectedFailures(known, sealfs.pjdfstest);
    const fixed = fixedFailures(known, sealfs.pjdfstest);
    out('');
    if (unexpected.length > 0) out(`sealfs pjdfstest failures not in ${KNOWN_FAILURES_FILE}:\n${unexpected.map((u) => `  ${u}`).join('\n')}`);
    if (fixed.length > 0) out(`sealfs pjdfstest known failures that passed (regenerate the list with --write-known):\n${fixed.map((f) => `  ${f}`).join('\n')}`);
    out('sealfs pjdfstest failures per script:');
    for (const t of sealfs.pjdfstest.filter((t) => t.failed.length > 0)) {
      const first = t.messages[t.failed[0]!];
      out(`  ${t.file}: ${t.failed.length}/${t.total}: ${ranges(t.failed)}${first ? ` — ${t.failed[0]}: ${first}` : ''}`);
    }
    if (options.writeKnown) {
      const updated = updateKnownFailures(known, sealfs.pjdfstest);
      await writeKnownFailures(updated);
      const unexplained = Object.entries(updated.pjdfstest).filter(([, k]) => k.why === UNEXPLAINED).map(([f]) => f);
      note(`conformance: wrote ${KNOWN_FAILURES_FILE}${unexplained.length ? `; not explained yet: ${unexplained.join(', ')}` : ''}`);
    }
  }
  const gocryptfs = results.get('gocryptfs');
  if (sealfs && gocryptfs && files.length > 0) {
    const s = sum(sealfs.pjdfstest.map((t) => t.failed.length));
    const g = sum(gocryptfs.pjdfstest.map((t) => t.failed.length));
    out(`${s <= g ? 'PASS' : 'FAIL'}  pjdfstest failures no more than gocryptfs's: sealfs ${s}, gocryptfs ${g}`);
  }
  if (sealfs && variants.length > 0) {
    const bad = sealfs.fsx.filter((f) => !f.ok).map((f) => f.variant);
    out(`${bad.length === 0 ? 'PASS' : 'FAIL'}  fsx ${options.fsxOps.toLocaleString('en-US')} operations clean in every variant${bad.length ? `: failed ${bad.join(', ')}` : ''}`);
  }
  note(`conformance: total ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(0)} s`);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ fsxOps: options.fsxOps, seed: options.seed, systems: Object.fromEntries(results) })}\n`);
  }
}

main().catch((err: unknown) => {
  note(`conformance: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
