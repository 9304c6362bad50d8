/**
 * Helpers for the scrub and backup suites (not a test file itself): test vaults populated
 * through PlainFs, the CLI (in process, or the built executable), and a real
 * `rclone serve webdav` on 127.0.0.1 as the "different provider".
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join, relative } from 'node:path';
import { initVault } from '../src/vault/init.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault, type Vault } from '../src/vault/vault.js';
import { joinPlain } from '../src/vault/tree.js';
import { runInProcess, type CliRun } from './helpers-cli.js';
import { endProcess, freePort, sleep } from '../bench/lib/proc.js';

export const PASSPHRASE = 'scrub and backup test passphrase';

/** Runs the CLI in process, with `env` as its environment and no terminal. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return runInProcess(args, env);
}

/** The built executable, detached: the end-to-end check. */
export { runBuiltCli as runCliBinary } from './helpers-cli.js';

export interface TestVault {
  readonly cipherDir: string;
  readonly keystoreDir: string;
  readonly passFile: string;
  readonly masterKey: Uint8Array;
  readonly vaultId: string;
  /** Plaintext of every file, by plaintext path. */
  readonly files: Map<string, Uint8Array>;
  /** Symlink targets, by plaintext path. */
  readonly links: Map<string, string>;
}

/** A directory name long enough that its encoded name takes the long-name scheme (maxNameLength 64). */
export const LONG_DIR = 'a directory whose name is far too long for the cipher name limit';

/** Deterministic bytes (seeded), so every run writes the same plaintext. */
export function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** The plaintext tree every test vault gets (64 KiB chunks; ~3.5 MiB in all). */
export const TREE: readonly { path: string; size: number }[] = [
  { path: '/empty.txt', size: 0 },
  { path: '/one.txt', size: 1 },
  { path: '/chunk-minus.bin', size: 65_535 },
  { path: '/chunk-exact.bin', size: 65_536 },
  { path: '/chunk-plus.bin', size: 65_537 },
  { path: '/docs/report.pdf', size: 300_000 },
  { path: '/docs/big.bin', size: 1_048_579 },
  { path: `/${LONG_DIR}/inside.bin`, size: 200_000 },
  { path: `/${LONG_DIR}/deeper/photo.jpg`, size: 2_000_001 },
  { path: `/docs/a file with a long name that also needs a sidecar of its own.txt`, size: 5_000 },
];

export const LINKS: readonly { path: string; target: string }[] = [
  { path: '/link-to-report', target: 'docs/report.pdf' },
  { path: `/${LONG_DIR}/up`, target: '../one.txt' },
];

export async function plainFsOf(v: { cipherDir: string; masterKey: Uint8Array }): Promise<PlainFs> {
  return new PlainFs(await openVault(v.cipherDir, v.masterKey));
}

export async function writePlain(fs: PlainFs, path: string, data: Uint8Array): Promise<void> {
  const fh = await fs.create(path, 0o644);
  try {
    for (let at = 0; at < data.length; at += 1 << 20) await fs.write(fh, at, data.subarray(at, at + (1 << 20)));
  } finally {
    await fs.release(fh);
  }
}

export async function readPlain(fs: PlainFs, path: string): Promise<Uint8Array> {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    const size = (await fs.getattr(path)).size;
    return await fs.read(fh, 0, size + 1);
  } finally {
    await fs.release(fh);
  }
}

async function mkdirs(fs: PlainFs, path: string): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  let at = '/';
  for (const part of parts) {
    at = joinPlain(at, part);
    await fs.mkdir(at, 0o755).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

/** A vault made by makeVault in its own folder `root`/v`n`. */
export async function makeVaultIn(root: string, n: number): Promise<TestVault> {
  const dir = join(root, `v${n}`);
  await mkdir(dir);
  return makeVault(dir);
}

/** The CLI arguments that unlock `v` without a prompt. */
export const keyArgs = (v: TestVault) => ['--keystore', v.keystoreDir, '--passphrase-file', v.passFile];

/** Creates a vault (fast KDF, maxNameLength 64) under `root` and fills it with TREE and LINKS. */
export async function makeVault(root: string, name = 'vault'): Promise<TestVault> {
  const cipherDir = join(root, name);
  const keystoreDir = join(root, `${name}-keys`);
  const passFile = join(root, `${name}-pass`);
  await writeFile(passFile, PASSPHRASE + '\n', { mode: 0o600 });
  const init = await initVault({
    cipherDir,
    keystoreDir,
    passphrase: PASSPHRASE,
    cipher: 'aes-256-gcm',
    chunkSize: 65_536,
    maxNameLength: 64,
    kdfTargetMs: 20,
  });
  const fs = await plainFsOf({ cipherDir, masterKey: init.masterKey });
  const files = new Map<string, Uint8Array>();
  const links = new Map<string, string>();
  let seed = 1;
  for (const { path, size } of TREE) {
    await mkdirs(fs, path.slice(0, path.lastIndexOf('/')) || '/');
    const data = bytesOf(size, seed++);
    await writePlain(fs, path, data);
    files.set(path, data);
  }
  for (const { path, target } of LINKS) {
    await fs.symlink(target, path);
    links.set(path, target);
  }
  return { cipherDir, keystoreDir, passFile, masterKey: init.masterKey, vaultId: init.config.vaultId, files, links };
}

/** The cipher path (relative to the cipher directory) of a plaintext path. */
export async function cipherRel(vault: Vault | TestVault, plainPath: string): Promise<string> {
  const v = 'tree' in vault ? vault : await openVault(vault.cipherDir, vault.masterKey);
  const found = await v.tree.resolve(plainPath);
  return relative(v.cipherDir, found.cipherPath);
}

/** Every file and link of the vault reads back exactly as written. */
export async function readsBackExactly(v: TestVault): Promise<string[]> {
  const fs = await plainFsOf(v);
  const wrong: string[] = [];
  for (const [path, data] of v.files) {
    const got = await readPlain(fs, path).catch(() => undefined);
    if (!got || Buffer.compare(Buffer.from(got), Buffer.from(data)) !== 0) wrong.push(path);
  }
  for (const [path, target] of v.links) {
    if ((await fs.readlink(path).catch(() => undefined)) !== target) wrong.push(path);
  }
  return wrong;
}

/** Flips one byte of a file, keeping its size and modification time (silent bit rot). */
export async function flipByte(path: string, offset: number): Promise<void> {
  const { utimes } = await import('node:fs/promises');
  const st = await stat(path);
  const data = await readFile(path);
  data[offset]! ^= 0x5a;
  await writeFile(path, data);
  await utimes(path, st.atime, st.mtime);
}

// ---------------------------------------------------------------------------------------
// rclone

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface WebdavServer {
  /** The served folder on disk (what the "provider" stores). */
  readonly root: string;
  readonly port: number;
  /** An rclone config file with a remote named `dav` for this server. */
  readonly configFile: string;
  stop(): Promise<void>;
}

/** `rclone serve webdav ROOT` on 127.0.0.1 with a random free port, user and password. */
export async function startWebdav(root: string, configFile: string): Promise<WebdavServer> {
  await mkdir(root, { recursive: true });
  const user = 'sealfs-test';
  const pass = `pw-${process.pid}-${Date.now()}`;
  const obscured = spawnSync('rclone', ['obscure', pass], { encoding: 'utf8' });
  if (obscured.status !== 0) throw new Error(`rclone obscure failed: ${obscured.stderr}`);
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn('rclone', ['serve', 'webdav', root, '--addr', `127.0.0.1:${port}`, '--user', user, '--pass', pass, '--config', '/dev/null'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await accepts(port)) {
        await writeFile(configFile, `[dav]\ntype = webdav\nurl = http://127.0.0.1:${port}\nvendor = rclone\nuser = ${user}\npass = ${obscured.stdout.trim()}\n`, { mode: 0o600 });
        return {
          root,
          port,
          configFile,
          stop: async () => {
            if (child.exitCode === null && child.pid !== undefined) await endProcess(child.pid, 5_000);
            await exited;
          },
        };
      }
      await sleep(100);
    }
    child.kill('SIGKILL');
    await exited;
    lastError = log;
  }
  throw new Error(`rclone serve webdav did not start: ${lastError}`);
}

/** Every regular file and link under `dir`, as '/'-separated relative paths. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(at: string): Promise<void> {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.push(relative(dir, path));
    }
  }
  await walk(dir);
  return out.sort();
}
