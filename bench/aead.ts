import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName } from '../src/crypto/backend.js';
import { backendByName } from '../src/crypto/backends/index.js';
import { CIPHER_NAMES } from '../src/crypto/ciphers.js';
import {
  OPS,
  asyncStep,
  makeFixture,
  megabytesPerSecond,
  syncStep,
  timeAsync,
  timeSync,
  type Case,
  type Fixture,
  type Op,
  type Sample,
} from './measure.js';
import { measureReference } from './openssl.js';
import { REFERENCE_CHUNK, TABLE_NOTES, chunkLabel, jsonReport, referenceLines, resultTable, targetLines, type Result } from './report.js';
import { WorkerPool } from './worker-pool.js';

/**
 * AEAD throughput of every backend × cipher × chunk size × thread count × operation, next to
 * `openssl speed` on the same machine. Prints a table and the native backend's targets; with
 * --json, stdout carries exactly one JSON object and everything else goes to stderr.
 */

const MiB = 1 << 20;
const CHUNK_SIZES = [4 * 1024, REFERENCE_CHUNK, MiB] as const;

interface Settings {
  /** Each figure is the best of this many timed rounds: other load can only slow a round down. */
  readonly rounds: number;
  /** Minimum duration of one round. */
  readonly secondsPerRound: number;
  /** Plaintext per ChunkRun (rounded up to whole chunks); noble is slow, so it gets less. */
  readonly bufferBytes: Readonly<Record<BackendName, number>>;
  readonly opensslRounds: number;
  readonly opensslChunks: readonly number[];
}

const QUICK: Settings = {
  rounds: 2,
  secondsPerRound: 0.08,
  bufferBytes: { native: 4 * MiB, node: 4 * MiB, noble: MiB / 4 },
  opensslRounds: 1,
  opensslChunks: [REFERENCE_CHUNK],
};

const FULL: Settings = {
  rounds: 5,
  secondsPerRound: 0.4,
  bufferBytes: { native: 16 * MiB, node: 16 * MiB, noble: MiB },
  opensslRounds: 3,
  opensslChunks: CHUNK_SIZES,
};

function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

const USAGE = 'usage: node dist/bench/aead.js [--quick] [--json]';

function parseOptions(args: string[]): { quick: boolean; json: boolean } | undefined {
  try {
    const { values } = parseArgs({ args, options: { quick: { type: 'boolean' }, json: { type: 'boolean' } }, strict: true });
    return { quick: values.quick ?? false, json: values.json ?? false };
  } catch (err) {
    note(`${(err as Error).message}\n${USAGE}`);
    return undefined;
  }
}

const LIBUV_DEFAULT_POOL_SIZE = 4;

/**
 * libuv sizes its thread pool on first use, and Node's ESM loader has used it before this module
 * runs, so a pool smaller than `cores` can only be fixed by running this script again with
 * UV_THREADPOOL_SIZE set. Returns that run's exit code, or undefined when the pool is big enough.
 */
function rerunWithThreadPool(cores: number): number | undefined {
  if (Number(process.env.UV_THREADPOOL_SIZE ?? LIBUV_DEFAULT_POOL_SIZE) >= cores) return undefined;
  const args = [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)];
  const env = { ...process.env, UV_THREADPOOL_SIZE: String(cores) };
  const child = spawnSync(process.execPath, args, { stdio: 'inherit', env });
  if (child.error) throw child.error;
  return child.status ?? 1;
}

/** A warning when other work already keeps the cores busy: then the figures, above all the multi-thread ones, are low. */
function busyNote(cores: number): string | undefined {
  const load = loadavg()[0]!;
  return load >= 0.5 ? `1-minute load average ${load.toFixed(2)} on ${cores} cores before starting: other processes compete for the CPU` : undefined;
}

function availableBackends(): BackendName[] {
  return BACKEND_NAMES.filter((name) => {
    try {
      backendByName(name);
      return true;
    } catch (err) {
      note(`bench: ${name} backend unavailable (${(err as Error).message.split('\n')[0]}); not measured`);
      return false;
    }
  });
}

/**
 * One thread: the backend's synchronous call. All threads: native spreads each call over the
 * libuv pool (the product's path); the JavaScript backends run one loop per worker thread.
 */
async function measureRound(fixture: Fixture, c: Case, threads: number, op: Op, settings: Settings, pool?: WorkerPool): Promise<Sample> {
  const bytes = fixture.plain.length;
  const minSeconds = settings.secondsPerRound;
  if (threads === 1) return timeSync(syncStep(fixture, op), bytes, minSeconds);
  if (c.backend === 'native') return timeAsync(asyncStep(fixture, op, threads), bytes, minSeconds);
  if (!pool) throw new Error(`no worker threads for ${c.backend} × ${threads}`);
  return pool.measure(c, settings.bufferBytes[c.backend], op, minSeconds);
}

async function bestOfRounds(rounds: number, round: () => Promise<Sample>): Promise<number> {
  let best = 0;
  for (let i = 0; i < rounds; i++) best = Math.max(best, megabytesPerSecond(await round()));
  return best;
}

async function measureCase(c: Case, threadCounts: readonly number[], settings: Settings, pool?: WorkerPool): Promise<Result[]> {
  const fixture = makeFixture(c, settings.bufferBytes[c.backend]);
  const results: Result[] = [];
  for (const threads of threadCounts) {
    for (const op of OPS) {
      const MBps = await bestOfRounds(settings.rounds, () => measureRound(fixture, c, threads, op, settings, pool));
      results.push({ ...c, threads, op, MBps });
    }
  }
  note(`bench: ${c.backend} ${c.cipher} ${chunkLabel(c.chunk)}: ` + results.map((r) => `${r.op}×${r.threads} ${r.MBps.toFixed(0)}`).join(', ') + ' MB/s');
  return results;
}

async function measureAll(backends: readonly BackendName[], cores: number, settings: Settings): Promise<Result[]> {
  const threadCounts = cores > 1 ? [1, cores] : [1];
  const pool = cores > 1 && backends.some((b) => b !== 'native') ? new WorkerPool(cores) : undefined;
  try {
    const results: Result[] = [];
    for (const backend of backends) {
      for (const cipher of CIPHER_NAMES) {
        for (const chunk of CHUNK_SIZES) results.push(...(await measureCase({ backend, cipher, chunk }, threadCounts, settings, pool)));
      }
    }
    return results;
  } finally {
    await pool?.close();
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!options) {
    process.exitCode = 2;
    return;
  }
  const cores = availableParallelism();
  const rerunStatus = rerunWithThreadPool(cores);
  if (rerunStatus !== undefined) {
    process.exitCode = rerunStatus;
    return;
  }
  const settings = options.quick ? QUICK : FULL;
  const method = `each figure the best of ${settings.rounds} rounds of ≥ ${settings.secondsPerRound} s`;
  note(`bench: ${options.quick ? 'quick' : 'full'} run on ${cores} cores, ${method}; MB/s with 1 MB = 10^6 bytes`);
  const busy = busyNote(cores);
  if (busy) note(`bench: ${busy}`);
  const reference = measureReference(CIPHER_NAMES, settings.opensslChunks, settings.opensslRounds);
  const results = await measureAll(availableBackends(), cores, settings);
  const targets = targetLines(results, reference, cores);
  if (options.json) {
    targets.forEach(note);
    process.stdout.write(`${JSON.stringify(jsonReport(reference, cores, results))}\n`);
  } else {
    const notes = [...TABLE_NOTES, `Backends: ${method}; openssl: best of ${settings.opensslRounds} × 1 s.`, ...(busy ? [`Warning: ${busy}`] : [])];
    const lines = [...referenceLines(reference), '', ...resultTable(results, reference), '', ...notes, '', 'Targets:', ...targets];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

await main();
