/**
 * `npm run bench:scrub [-- --quick] [-- --json] [-- --keep]`: scrub throughput against
 * reading the same ciphertext with `cat > /dev/null`, both from a warm page cache, in the
 * same run. Builds a vault of ≥ 1 GiB (104 files of 10 MiB; --quick: 20 files) through
 * PlainFs, then times `cat` over every ciphertext file and `sealfs scrub` (the built
 * command, end to end, and its engine in-process). Prints figures; never fails on them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { scrubVault } from '../src/tools/scrub.js';
import { initVault } from '../src/vault/init.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault } from '../src/vault/vault.js';

const FILE_BYTES = 10 * 1024 * 1024;
const FULL_FILES = 104; // 1040 MiB of plaintext: more than 1 GiB
const QUICK_FILES = 20;
const REPEATS = 3;
const PASSPHRASE = 'bench passphrase';
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const note = (line: string) => void process.stderr.write(`${line}\n`);

interface Figures {
  seconds: number;
  bytes: number;
}

const gbps = (f: Figures) => f.bytes / f.seconds / 1e9;

async function cipherFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await cipherFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function run(command: string, args: readonly string[], stdout: 'ignore' | 'pipe' = 'ignore'): Promise<{ seconds: number; stdout: string; code: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', stdout, 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) reject(new Error(`${command} exited with ${code}: ${err.trim().split('\n').pop()}`));
      else resolve({ seconds, stdout: out, code: code ?? 0 });
    });
  });
}

/** Single-core AES-256-GCM throughput per `openssl speed` (64 KiB blocks), or undefined. */
function opensslSpeed(): number | undefined {
  const r = spawnSync('openssl', ['speed', '-evp', 'aes-256-gcm', '-bytes', '65536', '-seconds', '1'], { encoding: 'utf8' });
  const match = /AES-256-GCM\s+([\d.]+)k/i.exec(r.stdout ?? '');
  return match ? (Number(match[1]) * 1000) / 1e9 : undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'boolean' }, keep: { type: 'boolean' } } });
  const files = values.quick ? QUICK_FILES : FULL_FILES;
  const cores = availableParallelism();
  const root = await mkdtemp(join(tmpdir(), 'sealfs-bench-scrub-'));
  try {
    const cipherDir = join(root, 'vault');
    const keystoreDir = join(root, 'keys');
    const passFile = join(root, 'pass');
    await writeFile(passFile, PASSPHRASE + '\n', { mode: 0o600 });
    const init = await initVault({ cipherDir, keystoreDir, passphrase: PASSPHRASE, cipher: 'aes-256-gcm', chunkSize: 65_536, maxNameLength: 255, kdfTargetMs: 20 });

    note(`bench:scrub: writing ${files} files of ${FILE_BYTES / 1024 / 1024} MiB through PlainFs into ${cipherDir}…`);
    const fs = new PlainFs(await openVault(cipherDir, init.masterKey));
    const data = randomBytes(FILE_BYTES);
    const writeStart = performance.now();
    for (let d = 0; d < 8; d++) await fs.mkdir(`/dir${d}`, 0o755);
    for (let i = 0; i < files; i++) {
      const fh = await fs.create(`/dir${i % 8}/file${i}.bin`, 0o644);
      for (let at = 0; at < FILE_BYTES; at += 4 << 20) await fs.write(fh, at, data.subarray(at, at + (4 << 20)));
      await fs.release(fh);
    }
    const writeSeconds = (performance.now() - writeStart) / 1000;

    const paths = await cipherFiles(cipherDir);
    let bytes = 0;
    for (const p of paths) bytes += (await stat(p)).size;

    // Warm the page cache, then time each side REPEATS times and keep the best.
    await run('cat', paths);
    const best = async (fn: () => Promise<number>): Promise<number> => {
      let min = Infinity;
      for (let i = 0; i < REPEATS; i++) min = Math.min(min, await fn());
      return min;
    };
    const catSeconds = await best(async () => (await run('cat', paths)).seconds);

    const cliArgs = [CLI, 'scrub', cipherDir, '--json', '--keystore', keystoreDir, '--passphrase-file', passFile];
    let scrubbed = 0;
    const cliSeconds = await best(async () => {
      const r = await run(process.execPath, cliArgs, 'pipe');
      const out = JSON.parse(r.stdout) as { bytes: number; problems: unknown[] };
      if (out.problems.length) throw new Error(`scrub found ${out.problems.length} problems in the benchmark vault`);
      scrubbed = out.bytes;
      return r.seconds;
    });
    const engineSeconds = await best(async () => {
      const started = performance.now();
      const r = await scrubVault({ cipherDir, masterKey: init.masterKey });
      if (r.problems.length) throw new Error('scrub found problems');
      return (performance.now() - started) / 1000;
    });

    // Peak memory of the whole command (GNU time), when available.
    let maxRssMiB: number | undefined;
    if (existsSync('/usr/bin/time')) {
      const out = join(root, 'time.txt');
      await run('/usr/bin/time', ['-f', '%M', '-o', out, process.execPath, ...cliArgs], 'pipe').catch(() => undefined);
      const kib = Number((await readFile(out, 'utf8').catch(() => '')).trim().split('\n').pop());
      if (kib > 0) maxRssMiB = kib / 1024;
    }

    const cat: Figures = { seconds: catSeconds, bytes };
    const cli: Figures = { seconds: cliSeconds, bytes: scrubbed };
    const engine: Figures = { seconds: engineSeconds, bytes };
    const openssl = opensslSpeed();
    const load = loadavg()[0]!;
    const result = {
      files: paths.length,
      cipherBytes: bytes,
      cores,
      writeGBps: (files * FILE_BYTES) / writeSeconds / 1e9,
      catGBps: gbps(cat),
      scrubCommandGBps: gbps(cli),
      scrubEngineGBps: gbps(engine),
      ratioCommand: gbps(cli) / gbps(cat),
      ratioEngine: gbps(engine) / gbps(cat),
      opensslAesGcmGBpsPerCore: openssl ?? null,
      scrubMaxRssMiB: maxRssMiB ?? null,
      loadAverage1m: load,
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(result) + '\n');
      return;
    }
    const f = (x: number) => x.toFixed(2);
    const lines = [
      `scrub benchmark: ${paths.length} ciphertext files, ${(bytes / 1e9).toFixed(2)} GB, page cache warm, ${cores} cores (best of ${REPEATS})`,
      '',
      '| reader | GB/s | seconds | × cat |',
      '|---|---:|---:|---:|',
      `| \`cat\` every file > /dev/null | ${f(gbps(cat))} | ${f(cat.seconds)} | 1.00 |`,
      `| \`sealfs scrub\` (whole command: start, unlock, verify) | ${f(gbps(cli))} | ${f(cli.seconds)} | ${f(result.ratioCommand)} |`,
      `| scrub engine (in-process, verification only) | ${f(gbps(engine))} | ${f(engine.seconds)} | ${f(result.ratioEngine)} |`,
      '',
      `target: scrub ≥ 0.80 × cat. Writing the vault through PlainFs ran at ${f(result.writeGBps)} GB/s.`,
      openssl !== undefined
        ? `crypto ceiling: every byte must be decrypted and authenticated; openssl speed AES-256-GCM = ${f(openssl)} GB/s per core, × ${cores} cores = ${f(openssl * cores)} GB/s before any read.`
        : 'openssl speed unavailable: no crypto ceiling figure.',
      maxRssMiB !== undefined ? `peak RSS of \`sealfs scrub\`: ${maxRssMiB.toFixed(0)} MiB.` : '',
      load >= 0.5 ? `note: 1-minute load average ${load.toFixed(2)} on ${cores} cores: other processes compete for the CPU, figures are low.` : '',
    ];
    process.stdout.write(lines.filter((l, i) => l !== '' || i === 1 || i === 7).join('\n') + '\n');
  } finally {
    if (values.keep) note(`bench:scrub: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  note(`bench:scrub: ${(err as Error).message}`);
  process.exitCode = 1;
});
