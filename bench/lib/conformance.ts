import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { packageRoot } from '../../src/packageroot.js';
import { run, runDetached } from './proc.js';

/**
 * The standard conformance suites, vendored under third_party/ at pinned commits
 * (third_party/README.md): pjdfstest (POSIX system-call semantics, run as root) and xfstests'
 * fsx (random reads, writes, truncates and mapped I/O, every byte checked against a model).
 * This module builds them into a cache folder with one cc line each and runs them against a
 * directory; bench/conformance.ts (full runs, sealfs against gocryptfs) and
 * test/conformance.test.ts (the fixed CI subset, against the known-failure list) use it.
 */

const REPO = packageRoot();
export const THIRD_PARTY = join(REPO, 'third_party');
const SHIMS = join(REPO, 'bench', 'conformance');
/** Known pjdfstest failures of sealfs, each with its reason (written by `bench:conformance --write-known`). */
export const KNOWN_FAILURES_FILE = join(SHIMS, 'known-failures.json');

export interface Suites {
  /** Folder holding the pjdfstest binary and its tests/ (the scripts find the binary above themselves). */
  readonly pjdfstest: string;
  readonly fsx: string;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/**
 * Builds both suites unless the cache already holds this exact build: the cache folder's name
 * is a hash of every vendored source, the config shims and the compiler's version, so an
 * update of any of them builds afresh. node_modules/.cache/ is where tools keep such builds
 * (SEALFS_CONFORMANCE_CACHE overrides it).
 */
export async function buildSuites(): Promise<Suites> {
  const { stdout: ccVersion } = await run('cc', ['--version'], { stdout: 'pipe', timeoutS: 30 }).catch((err: Error) => {
    throw new Error(`the conformance suites need a C compiler (cc, Debian package gcc): ${err.message}`);
  });
  const hash = createHash('sha256').update(ccVersion);
  const inputs = [...(await filesUnder(join(THIRD_PARTY, 'pjdfstest'))), ...(await filesUnder(join(THIRD_PARTY, 'fsx'))), join(SHIMS, 'pjdfstest-config.h'), join(SHIMS, 'fsx-config.h')];
  for (const file of inputs) hash.update(relative(REPO, file)).update('\0').update(await readFile(file)).update('\0');
  const cacheRoot = process.env.SEALFS_CONFORMANCE_CACHE ?? join(REPO, 'node_modules', '.cache', 'sealfs-conformance');
  const dir = join(cacheRoot, hash.digest('hex').slice(0, 16));
  const suites: Suites = { pjdfstest: join(dir, 'pjdfstest'), fsx: join(dir, 'fsx', 'fsx') };
  if (existsSync(join(dir, 'complete'))) return suites;

  await mkdir(cacheRoot, { recursive: true });
  const tmp = await mkdtemp(join(cacheRoot, 'build-'));
  try {
    // pjdfstest: tests/ next to the binary, as in its source tree (misc.sh looks upwards for it).
    const pjd = join(tmp, 'pjdfstest');
    await cp(join(THIRD_PARTY, 'pjdfstest', 'tests'), join(pjd, 'tests'), { recursive: true });
    await mkdir(join(tmp, 'pjdfstest-include'));
    await copyFile(join(SHIMS, 'pjdfstest-config.h'), join(tmp, 'pjdfstest-include', 'config.h'));
    await cc(['-Wall', '-Werror', '-O2', '-I', join(tmp, 'pjdfstest-include'), '-o', join(pjd, 'pjdfstest'), join(THIRD_PARTY, 'pjdfstest', 'pjdfstest.c')]);
    // fsx: ltp/fsx.c with xfstests' src/global.h and src/statx.h; no -DXFS (no xfsprogs headers).
    const fsx = join(tmp, 'fsx');
    await mkdir(join(fsx, 'include'), { recursive: true });
    await copyFile(join(SHIMS, 'fsx-config.h'), join(fsx, 'include', 'config.h'));
    await cc(['-Wall', '-O2', '-D_GNU_SOURCE', '-I', join(fsx, 'include'), '-I', join(THIRD_PARTY, 'fsx', 'src'), '-o', join(fsx, 'fsx'), join(THIRD_PARTY, 'fsx', 'ltp', 'fsx.c')]);
    await writeFile(join(tmp, 'complete'), `${ccVersion.split('\n')[0]}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return suites;
}

async function cc(args: readonly string[]): Promise<void> {
  await run('cc', args, { timeoutS: 300 });
}

// ---------------------------------------------------------------- pjdfstest

/** The test scripts (as 'chmod/00.t'), in prove -r's order; `only` picks folders or files. */
export async function pjdfstestFiles(suites: Suites, only?: readonly string[]): Promise<string[]> {
  const root = join(suites.pjdfstest, 'tests');
  const all = (await filesUnder(root)).map((f) => relative(root, f)).filter((f) => f.endsWith('.t'));
  if (!only) return all;
  const wanted = all.filter((f) => only.some((o) => f === o || f.startsWith(`${o.replace(/\/$/, '')}/`)));
  const unknown = only.filter((o) => !all.some((f) => f === o || f.startsWith(`${o.replace(/\/$/, '')}/`)));
  if (unknown.length > 0) throw new Error(`no pjdfstest test matches ${unknown.join(', ')}`);
  return wanted;
}

export interface TapResult {
  /** The script, as 'chmod/00.t'. */
  readonly file: string;
  /** Subtests in the plan (1..N); the highest number seen when there is no plan. */
  readonly total: number;
  /** Failed subtests: "not ok" (a TODO one does not count, as in prove) or planned but never reported. */
  readonly failed: readonly number[];
  /** What each "not ok" line said (e.g. "tried 'mkfifo pjdfstest_… 0644', expected 0, got ENOSYS"). */
  readonly messages: Readonly<Record<number, string>>;
  readonly seconds: number;
  /** Why the script itself went wrong (no plan, timed out, died), if it did. */
  readonly problem?: string;
}

/** Reads one script's TAP output the way prove does. */
export function parseTap(file: string, text: string): Omit<TapResult, 'seconds'> {
  let planned: number | undefined;
  const passed = new Set<number>();
  const failed = new Set<number>();
  const messages: Record<number, string> = {};
  for (const line of text.split('\n')) {
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) {
      planned = Number(plan[1]);
      continue;
    }
    const result = /^(not )?ok (\d+)\b\s*(?:-\s*)?(.*)$/.exec(line);
    if (!result) continue;
    const n = Number(result[2]);
    const todo = /#\s*TODO\b/i.test(result[3] ?? '');
    if (result[1] && !todo) {
      failed.add(n);
      if (result[3]) messages[n] = result[3];
    } else passed.add(n);
  }
  const seen = [...passed, ...failed];
  const total = planned ?? Math.max(0, ...seen);
  for (let n = 1; n <= total; n++) if (!passed.has(n) && !failed.has(n)) failed.add(n);
  const problem = planned === undefined ? 'no plan (1..N) printed' : seen.some((n) => n > planned!) ? `more results than the plan's ${planned}` : undefined;
  return { file, total, failed: [...failed].sort((a, b) => a - b), messages, ...(problem ? { problem } : {}) };
}

/**
 * Runs one pjdfstest script in `cwd` (a folder on the file system under test) as prove -r
 * does: the script is a #!/bin/sh program printing TAP. A script running over `timeoutMs` is
 * ended; its unreported subtests count as failed.
 */
export async function runPjdfstestFile(suites: Suites, file: string, cwd: string, timeoutMs: number): Promise<TapResult> {
  const start = process.hrtime.bigint();
  const result = await runDetached('/bin/sh', [join(suites.pjdfstest, 'tests', file)], process.env, timeoutMs, { cwd });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const tap = parseTap(file, result.stdout);
  const problem = result.timedOut ? `timed out after ${timeoutMs / 1000} s` : result.code !== 0 ? `exit code ${result.code}` : tap.problem;
  return { ...tap, seconds, ...(problem ? { problem } : {}) };
}

// ---------------------------------------------------------------- fsx

export interface FsxVariant {
  readonly name: string;
  readonly args: readonly string[];
  readonly describe: string;
}

/**
 * The fsx runs of issue 12: the default mix (reads, writes, truncates, mapped reads and writes,
 * and whichever of fallocate, hole punching, copy_file_range etc. the file system supports;
 * fsx tests each once and leaves out what is refused), without mmap, with the file closed
 * and reopened at random, with a flush and cache invalidation after every I/O, and with large
 * offsets. fsx keeps the whole file in memory (twice), so "large" means files of up to 16 MiB
 * (256 chunks of 64 KiB, 4,096 blocks of 4 KiB) with operations of up to 1 MiB, not offsets
 * beyond 4 GiB; 64 MiB took sealfs 48 minutes for 100,000 operations (it writes the zeros of
 * every truncate that extends a file).
 */
export const FSX_VARIANTS: readonly FsxVariant[] = [
  { name: 'default', args: [], describe: 'default mix (files up to 256 KiB, operations up to 64 KiB)' },
  { name: 'no-mmap', args: ['-R', '-W'], describe: 'no mapped reads or writes (-R -W)' },
  { name: 'close-open', args: ['-c', '100'], describe: 'closed, caches dropped and reopened, 1 in 100 operations (-c 100)' },
  { name: 'flush', args: ['-f'], describe: 'flush and invalidate the cache after every I/O (-f)' },
  { name: 'large', args: ['-l', String(16 * 1024 * 1024), '-o', String(1024 * 1024)], describe: 'files up to 16 MiB, operations up to 1 MiB (-l 16777216 -o 1048576)' },
];

export interface FsxResult {
  readonly variant: string;
  readonly ops: number;
  readonly seed: number;
  readonly ok: boolean;
  readonly seconds: number;
  /** The end of fsx's output when it failed (what went wrong and the last operations). */
  readonly detail?: string;
}

/**
 * Runs fsx on a fresh file in `dir` (on the file system under test); its log and model copies
 * (.fsxlog, .fsxgood) go to `logDir`, outside it. Exit code 0 means every operation was checked.
 */
export async function runFsx(suites: Suites, variant: FsxVariant, dir: string, logDir: string, ops: number, seed: number, timeoutMs: number): Promise<FsxResult> {
  const file = join(dir, `fsx-${variant.name}`);
  const args = ['-q', '-N', String(ops), '-S', String(seed), '-P', logDir, ...variant.args, file];
  const start = process.hrtime.bigint();
  const result = await runDetached(suites.fsx, args, process.env, timeoutMs, { cwd: logDir });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // Through a child process: this process never touches a mount itself (bench/lib/proc.ts).
  await runDetached('rm', ['-f', file], process.env, 60_000);
  const ok = result.code === 0 && !result.timedOut;
  const why = result.timedOut ? `timed out after ${timeoutMs / 1000} s\n` : `exit code ${result.code}\n`;
  const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-30).join('\n');
  return { variant: variant.name, ops, seed, ok, seconds, ...(ok ? {} : { detail: `fsx ${args.join(' ')}: ${why}${output}` }) };
}

// ---------------------------------------------------------------- known failures

export interface KnownFile {
  /** Subtests of this script that fail on sealfs today. */
  readonly failed: number[];
  /** Why: the missing feature or the deliberate difference, in a sentence. */
  why: string;
  /**
   * Which subtests fail varies from run to run (the cause is a cache that expires after 1 s,
   * raced by the script): while this is set, any subtest of the script may fail. Set by hand,
   * kept by --write-known; remove it once the cause is fixed.
   */
  varies?: boolean;
}
export interface KnownFailures {
  readonly comment: string;
  /** pjdfstest script ('chmod/00.t') → its known failures on sealfs. */
  readonly pjdfstest: Record<string, KnownFile>;
}

export const UNEXPLAINED = 'NOT EXPLAINED YET: find the cause and say it here and in the README';

export async function readKnownFailures(): Promise<KnownFailures> {
  if (!existsSync(KNOWN_FAILURES_FILE)) return { comment: '', pjdfstest: {} };
  return JSON.parse(await readFile(KNOWN_FAILURES_FILE, 'utf8')) as KnownFailures;
}

/**
 * The known list after a run: each script that ran is replaced by what it did now (its
 * reason kept); scripts that did not run stay as they were.
 */
export function updateKnownFailures(known: KnownFailures, results: readonly TapResult[]): KnownFailures {
  const pjdfstest: Record<string, KnownFile> = { ...known.pjdfstest };
  for (const r of results) {
    if (r.failed.length === 0) delete pjdfstest[r.file];
    else {
      const before = known.pjdfstest[r.file];
      pjdfstest[r.file] = { failed: [...r.failed], why: before?.why ?? UNEXPLAINED, ...(before?.varies ? { varies: true } : {}) };
    }
  }
  const sorted = Object.fromEntries(Object.keys(pjdfstest).sort().map((k) => [k, pjdfstest[k]!]));
  return {
    comment:
      'pjdfstest subtests that fail on sealfs, with the reason. test/conformance.test.ts fails on any other failure. ' +
      'Regenerate after a change with: npm run build && node dist/bench/conformance.js --only sealfs --suite pjdfstest --write-known ' +
      "(reasons and the 'varies' flag, set by hand for a script whose failing subtests change from run to run, are kept per script; " +
      'a new one reads NOT EXPLAINED YET until someone writes it).',
    pjdfstest: sorted,
  };
}

export async function writeKnownFailures(known: KnownFailures): Promise<void> {
  await writeFile(KNOWN_FAILURES_FILE, `${JSON.stringify(known, null, 2)}\n`);
}

/** Failures of a run not in the known list, as 'chmod/00.t: 22, 23 (…first message…)'. */
export function unexpectedFailures(known: KnownFailures, results: readonly TapResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const entry = known.pjdfstest[r.file];
    const allowed = new Set(entry?.failed ?? []);
    const extra = entry?.varies ? [] : r.failed.filter((n) => !allowed.has(n));
    if (extra.length === 0) continue;
    const first = r.messages[extra[0]!];
    out.push(`${r.file}: subtest${extra.length > 1 ? 's' : ''} ${extra.join(', ')}${first ? ` (${extra[0]}: ${first})` : ''}${r.problem ? ` [${r.problem}]` : ''}`);
  }
  return out;
}

/** Known failures that passed this time (the list can shrink: regenerate it). */
export function fixedFailures(known: KnownFailures, results: readonly TapResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const now = new Set(r.failed);
    const fixed = (known.pjdfstest[r.file]?.varies ? [] : (known.pjdfstest[r.file]?.failed ?? [])).filter((n) => !now.has(n));
    if (fixed.length > 0) out.push(`${r.file}: ${fixed.join(', ')}`);
  }
  return out;
}

/** A folder of the file system under test where pjdfstest and fsx may work (mode 0755, as a fresh folder). */
export async function workDir(mnt: string, name: string): Promise<string> {
  const dir = join(mnt, name);
  await run('mkdir', ['-p', dir], { timeoutS: 30 });
  await run('chmod', ['0755', dir], { timeoutS: 30 });
  return dir;
}

/** Compact subtest list: 1-3, 7, 9-12. */
export function ranges(numbers: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < numbers.length; ) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++;
    parts.push(i === j ? `${numbers[i]}` : `${numbers[i]}-${numbers[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

// ---------------------------------------------------------------- one system

export interface Plan {
  /** pjdfstest scripts to run ('chmod/00.t'); empty: none. */
  readonly pjdfstest: readonly string[];
  readonly pjdfstestTimeoutMs: number;
  readonly fsxVariants: readonly FsxVariant[];
  readonly fsxOps: number;
  readonly fsxSeed: number;
  readonly fsxTimeoutMs: number;
  /** Called after each script or fsx run (progress lines). */
  readonly progress?: (line: string) => void;
}

export interface SystemResults {
  readonly pjdfstest: TapResult[];
  readonly fsx: FsxResult[];
}

/**
 * Size of the tmpfs that holds each system's cipher folder: a file system that lets
 * `truncate -s 999999999999999` write out its zeros (sealfs before EFBIG) fills this and
 * fails, instead of filling the machine's disk.
 */
export const CIPHER_TMPFS_SIZE = '2g';

/**
 * Sets a system up in `dir` (its cipher folder and mount point on a tmpfs of their own, mounted
 * as root), mounted for every user, runs the plan in a work folder on the mount, and takes
 * everything down again, whatever happens. Needs root (tmpfs, pjdfstest's user switches).
 */
export async function runOnSystem(
  setup: (dir: string) => Promise<{ mnt: string; teardown(): Promise<void> }>,
  suites: Suites,
  dir: string,
  plan: Plan,
): Promise<SystemResults> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${CIPHER_TMPFS_SIZE},mode=0755`, 'sealfs-conformance', dir], { timeoutS: 30 });
  const logDir = await mkdtemp(join(dir, '..', 'fsx-logs-'));
  try {
    const mounted = await setup(dir);
    try {
      const pjdfstest: TapResult[] = [];
      if (plan.pjdfstest.length > 0) {
        const cwd = await workDir(mounted.mnt, 'pjdfstest');
        for (const file of plan.pjdfstest) {
          const r = await runPjdfstestFile(suites, file, cwd, plan.pjdfstestTimeoutMs);
          pjdfstest.push(r);
          plan.progress?.(`${file}: ${r.failed.length}/${r.total} failed (${r.seconds.toFixed(1)} s)${r.problem ? ` [${r.problem}]` : ''}`);
        }
      }
      const fsx: FsxResult[] = [];
      if (plan.fsxVariants.length > 0) {
        const cwd = await workDir(mounted.mnt, 'fsx');
        for (const variant of plan.fsxVariants) {
          const r = await runFsx(suites, variant, cwd, logDir, plan.fsxOps, plan.fsxSeed, plan.fsxTimeoutMs);
          fsx.push(r);
          plan.progress?.(`fsx ${variant.name}: ${r.ok ? 'clean' : 'FAILED'} after ${r.seconds.toFixed(1)} s${r.detail ? `\n${r.detail}` : ''}`);
        }
      }
      return { pjdfstest, fsx };
    } finally {
      await mounted.teardown();
    }
  } finally {
    await run('umount', [dir], { timeoutS: 60 }).catch(() => run('umount', ['-l', dir], { timeoutS: 60 }));
    await rm(logDir, { recursive: true, force: true });
  }
}
