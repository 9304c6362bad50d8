import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName } from '../src/crypto/backend.js';
import { backendByName } from '../src/crypto/backends/index.js';
import { CIPHER_NAMES } from '../src/crypto/ciphers.js';
import { WRITE_BACK_BYTES } from '../src/crypto/sealedfile.js';
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
import { measureReference, measureScaling } from './openssl.js';
import { REFERENCE_CHUNK, TABLE_NOTES, chunkLabel, jsonReport, referenceLines, resultTable, scalingLine, targetLines, type Result } from './report.js';
import { WorkerPool } from './worker-pool.js';

/**
 * AEAD throughput of every backend × cipher × chunk size × thread count × operation, next to
 * `openssl speed` on the same machine. Prints a table and the native backend's targets; with
 * --json, stdout carries exactly one JSON object and everything else goes to stderr.
 *
 * Method, the same for every backend:
 * - Each call seals or opens one run of CALL_BYTES of plaintext, the batch sealfs itself hands
 *   to the backend: the mount gathers sequential writes into WRITE_BACK_BYTES and seals them in
 *   one call (reads ahead 1 MiB; other large ranges go in 4 MiB batches). That plaintext has
 *   just been copied, so it is in the CPU caches; a much larger buffer (this benchmark used
 *   16 MiB) would measure DRAM streaming instead, which neither sealfs nor `openssl speed`
 *   (one 64 KiB buffer, hot in L1/L2) does.
 * - One call in flight at a time, awaited before the next, as one file's writes are in sealfs.
 *   "1 thread" is the synchronous call; "all cores" is, for native, the async call spread over
 *   libuv's pool (the product's path), and for the single-threaded JavaScript backends one such
 *   loop per worker thread.
 * - Each figure is the best of several short rounds, and the rounds of 1 thread and of all
 *   cores alternate, so that both see the same moments of a shared machine: other load can only
 *   slow a round down, and a ratio of two figures taken minutes apart mostly measures the load.
 */

const MiB = 1 << 20;
const CHUNK_SIZES = [4 * 1024, REFERENCE_CHUNK, MiB] as const;

interface Settings {
  /** Each figure is the best of this many timed rounds: other load can only slow a round down. */
  readonly rounds: number;
  /** Minimum duration of one round. */
  readonly secondsPerRound: number;
  /** Plaintext per ChunkRun (rounded up to whole chunks); noble is slow, so it gets less in a quick run. */
  readonly bufferBytes: Readonly<Record<BackendName, number>>;
  readonly opensslRounds: number;
  readonly opensslChunks: readonly number[];
  /** Also run `openssl speed -multi <cores>`: the machine's own scaling, to read the thread targets against. */
  readonly opensslScaling: boolean;
}

/** Plaintext per call: the batch the mount seals at once (see the method above). */
const CALL_BYTES = WRITE_BACK_BYTES;

const QUICK: Settings = {
  rounds: 2,
  secondsPerRound: 0.08,
  bufferBytes: { native: CALL_BYTES, node: CALL_BYTES, noble: MiB / 4 },
  opensslRounds: 1,
  opensslChunks: [REFERENCE_CHUNK],
  opensslScaling: false,
};

const FULL: Settings = {
  rounds: 5,
  secondsPerRound: 0.4,
  bufferBytes: { native: CALL_BYTES, node: CALL_BYTES, noble: CALL_BYTES },
  // As many tries as each backend figure gets, so neither side is likelier to catch a quiet moment.
  opensslRounds: 5,
  opensslChunks: CHUNK_SIZES,
  opensslScaling: true,
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

/**
 * Every thread count × operation of one case, each the best of `settings.rounds` rounds, taken
 * in turns (round 1 of each, then round 2 of each, …) so that all see the same conditions.
 */
async function measureCase(c: Case, threadCounts: readonly number[], settings: Settings, pool?: WorkerPool): Promise<Result[]> {
  const fixture = makeFixture(c, settings.bufferBytes[c.backend]);
  const results = threadCounts.flatMap((threads) => OPS.map((op): Result => ({ ...c, threads, op, MBps: 0 })));
  for (let round = 0; round < settings.rounds; round++) {
    for (const [i, { threads, op, MBps }] of results.entries()) {
      const sample = await measureRound(fixture, c, threads, op, settings, pool);
      results[i] = { ...c, threads, op, MBps: Math.max(MBps, megabytesPerSecond(sample)) };
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
  const scaling = settings.opensslScaling && cores > 1 ? measureScaling('aes-256-gcm', REFERENCE_CHUNK, cores, settings.opensslRounds) : undefined;
  const results = await measureAll(availableBackends(), cores, settings);
  const targets = targetLines(results, reference, cores, scaling);
  if (options.json) {
    targets.forEach(note);
    process.stdout.write(`${JSON.stringify(jsonReport(reference, cores, results))}\n`);
  } else {
    const notes = [
      ...TABLE_NOTES,
      `Backends: ${chunkLabel(CALL_BYTES)} of plaintext per call (noble: ${chunkLabel(settings.bufferBytes.noble)}), one call at a time; ${method}, 1 thread and ${cores} threads in turns; openssl: best of ${settings.opensslRounds} × 1 s.`,
      ...(busy ? [`Warning: ${busy}`] : []),
    ];
    const scalingLines = scaling ? [scalingLine(scaling, reference)] : [];
    const lines = [...referenceLines(reference), ...scalingLines, '', ...resultTable(results, reference), '', ...notes, '', 'Targets:', ...targets];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

await main();
