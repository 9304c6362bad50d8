import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  alive,
  CommandError,
  canonical,
  endProcess,
  freePort,
  fuseUnmount,
  isMounted,
  note,
  onAbort,
  once,
  readTail,
  run,
  sleep,
  waitExit,
  waitMounted,
  waitPidGone,
} from './proc.js';

/**
 * One driver per system under test. `setup(dir)` makes whatever the system needs inside `dir`
 * (a fresh directory on the benchmark's backing disk) and returns a mounted, ready view; its
 * `teardown()` unmounts, ends the serving process and is safe to call more than once.
 */

export const SYSTEM_NAMES = ['plain', 'sealfs', 'gocryptfs', 'rclone'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** The system cannot be measured here (not installed, or its CLI not ready): reported as missing. */
export class Unavailable extends Error {}

export interface WriteExpectation {
  /** Files the step creates (each one upload for a write-back system). */
  readonly files: number;
  /** The step fsyncs its data (dd conv=fsync): a write-back system must make its stored copy durable too. */
  readonly fsync: boolean;
}

export interface Mounted {
  /** Where the workload runs. */
  readonly mnt: string;
  /** The serving process, for its memory use; absent for a plain directory. */
  readonly pid?: number;
  /**
   * For a system that encrypts after the write returns (rclone's VFS cache): called untimed
   * before a writing step; the function it returns is awaited inside the step's timing and
   * resolves once everything written is encrypted and stored in the cipher directory.
   */
  beginWrites?(expect: WriteExpectation): Promise<() => Promise<void>>;
  /** Untimed, before a cold read: empty any plaintext cache of the system's own (beyond the page cache). */
  coldRead?(): Promise<void>;
  teardown(): Promise<void>;
}

export interface SetupOptions {
  /**
   * Let every local user use the mount, with the kernel checking modes (the conformance suites
   * run as root and switch users): gocryptfs -allow_other; sealfs --allow-other with
   * --others-mode 777, so that modes are shown as stored.
   */
  readonly allowOther?: boolean;
}

export interface Driver {
  readonly name: SystemName;
  /** How the system is set up and mounted, flags included, for the report. */
  readonly describe: string;
  setup(dir: string, options?: SetupOptions): Promise<Mounted>;
}

/** The mount flags SetupOptions add, per system. */
export const ALLOW_OTHER_ARGS: Readonly<Record<'sealfs' | 'gocryptfs', readonly string[]>> = {
  sealfs: ['--allow-other', '--others-mode', '777'],
  gocryptfs: ['-allow_other'],
};

const MOUNT_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;

async function writePassphrase(path: string): Promise<void> {
  await writeFile(path, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
}

async function makeDirs(dir: string): Promise<{ cipher: string; mnt: string }> {
  const cipher = join(dir, 'cipher');
  const mnt = join(dir, 'mnt');
  await mkdir(cipher, { recursive: true });
  await mkdir(mnt, { recursive: true });
  return { cipher, mnt: await canonical(mnt) };
}

/** Fails with Unavailable when a program is not installed. */
async function requireProgram(cmd: string, versionArgs: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, versionArgs, { stdout: 'pipe', timeoutS: 20 });
    return stdout.trim().split('\n')[0] ?? '';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Unavailable(`${cmd} is not installed`);
    throw err;
  }
}

/** Starts a FUSE server that stays in the foreground, in its own process group, logging to a file. */
function spawnServer(cmd: string, args: readonly string[], log: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env });
    child.on('error', (err) => note(`bench: ${cmd}: ${err.message}`));
    return child;
  } finally {
    closeSync(fd);
  }
}

/** Does this process hold /dev/fuse open (i.e. is it a FUSE server)? */
async function holdsDevFuse(pid: number): Promise<boolean> {
  try {
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === '/dev/fuse') return true;
    }
  } catch {
    // no access or gone
  }
  return false;
}

/**
 * Mounted view served by a foreground child: teardown = fusermount -u, wait for the child to
 * exit (it does once unmounted), SIGTERM/SIGKILL it by pid if it does not.
 */
async function serveInForeground(name: string, server: ChildProcess, mnt: string, log: string, extra: Partial<Mounted> = {}): Promise<Mounted> {
  const teardown = once(async () => {
    await fuseUnmount(mnt);
    if (!(await waitExit(server, EXIT_TIMEOUT_MS)) && server.pid !== undefined) {
      note(`bench: ${name} (pid ${server.pid}) still running after unmount; ending it`);
      await endProcess(server.pid);
    }
  });
  const unregister = onAbort(teardown);
  try {
    await waitMounted(mnt, MOUNT_TIMEOUT_MS, server, name);
  } catch (err) {
    await teardown();
    unregister();
    const tail = readTail(log).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${(err as Error).message}${tail ? `\n${tail}` : ''}`);
  }
  return {
    mnt,
    ...(server.pid === undefined ? {} : { pid: server.pid }),
    ...extra,
    teardown: async () => {
      await teardown();
      unregister();
    },
  };
}

// ---------------------------------------------------------------- plain directory

export const plain: Driver = {
  name: 'plain',
  describe: 'plain directory on the same disk (no FUSE, no encryption)',
  async setup(dir) {
    const mnt = join(dir, 'plain');
    await mkdir(mnt, { recursive: true });
    return { mnt: await canonical(mnt), teardown: async () => {} };
  },
};

// ---------------------------------------------------------------- gocryptfs

const GOCRYPTFS_INIT = ['-init', '-q', '-scryptn', '10'];
/** -fg keeps the server our child (its pid is the serving pid; no daemonising re-exec). */
const GOCRYPTFS_MOUNT = ['-fg', '-q'];

export const gocryptfs: Driver = {
  name: 'gocryptfs',
  describe:
    `gocryptfs ${GOCRYPTFS_INIT.join(' ')} -extpass cat -extpass PASSFILE CIPHER; ` +
    `gocryptfs ${GOCRYPTFS_MOUNT.join(' ')} -extpass cat -extpass PASSFILE CIPHER MNT (default options: AES-256-GCM, 4 KiB blocks)`,
  async setup(dir, options = {}) {
    const version = await requireProgram('gocryptfs', ['-version']);
    note(`bench: gocryptfs: ${version}`);
    const { cipher, mnt } = await makeDirs(dir);
    const pass = join(dir, 'passphrase');
    const log = join(dir, 'gocryptfs.log');
    await writePassphrase(pass);
    const extpass = ['-extpass', 'cat', '-extpass', pass];
    await run('gocryptfs', [...GOCRYPTFS_INIT, ...extpass, cipher], { timeoutS: 60, log });
    const others = options.allowOther ? ALLOW_OTHER_ARGS.gocryptfs : [];
    const server = spawnServer('gocryptfs', [...GOCRYPTFS_MOUNT, ...others, ...extpass, cipher, mnt], log);
    return serveInForeground('gocryptfs', server, mnt, log);
  },
};

// ---------------------------------------------------------------- rclone crypt

/**
 * Full semantics (random writes, read-write opens) need the VFS cache; "writes" mode stages
 * written files in a plaintext cache and encrypts them into the remote when they are closed.
 * --vfs-write-back 0s uploads on close instead of 5 s later; the benchmark times each writing
 * step until rclone's uploads are done (the encrypted copy exists), and with
 * --vfs-cache-max-age 0s and a 1 s poll the plaintext copies leave the cache soon after, so that
 * the cold reads go through decryption instead of being served from the plaintext cache.
 */
const RCLONE_MOUNT = [
  '--vfs-cache-mode', 'writes',
  '--vfs-write-back', '0s',
  '--vfs-cache-max-age', '0s',
  '--vfs-cache-poll-interval', '1s',
];

interface RcloneStats {
  readonly transfers: number;
  readonly errors: number;
  readonly transferring?: readonly unknown[];
}

interface RcloneVfsStats {
  readonly diskCache?: { readonly files: number; readonly uploadsInProgress: number; readonly uploadsQueued: number };
}

async function rc<T>(port: number, command: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}/${command}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  if (!response.ok) throw new Error(`rclone rc ${command}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

export const rclone: Driver = {
  name: 'rclone',
  describe:
    `rclone crypt (standard name encryption) over a local remote, temporary --config file, passwords from rclone obscure; ` +
    `rclone mount crypt: MNT ${RCLONE_MOUNT.join(' ')} --cache-dir DIR/cache --rc --rc-addr 127.0.0.1:PORT --rc-no-auth ` +
    `(writing steps timed until rclone's uploads into the cipher dir finish; the 256 MiB write also until its ciphertext is fsynced)`,
  async setup(dir) {
    // Every rclone command gets --config, so that nothing touches ~/.config/rclone.
    const conf = join(dir, 'rclone.conf');
    const version = await requireProgram('rclone', ['--config', conf, 'version']);
    note(`bench: rclone: ${version}`);
    const { cipher, mnt } = await makeDirs(dir);
    const cache = join(dir, 'cache');
    const log = join(dir, 'rclone.log');
    const obscure = async () => (await run('rclone', ['--config', conf, 'obscure', randomBytes(18).toString('base64url')], { stdout: 'pipe', timeoutS: 20 })).stdout.trim();
    const config = [
      '[local]',
      'type = local',
      '',
      '[crypt]',
      'type = crypt',
      `remote = local:${cipher}`,
      'filename_encryption = standard',
      'directory_name_encryption = true',
      `password = ${await obscure()}`,
      `password2 = ${await obscure()}`,
      '',
    ].join('\n');
    await writeFile(conf, config, { mode: 0o600 });
    const port = await freePort();
    const args = ['--config', conf, 'mount', 'crypt:', mnt, ...RCLONE_MOUNT, '--cache-dir', cache, '--rc', '--rc-addr', `127.0.0.1:${port}`, '--rc-no-auth'];
    const server = spawnServer('rclone', args, log);

    const stats = () => rc<RcloneStats>(port, 'core/stats');
    const waitIdle = async (timeoutMs: number): Promise<RcloneStats> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await stats();
        if ((s.transferring?.length ?? 0) === 0 || Date.now() > deadline) return s;
        await sleep(50);
      }
    };

    const mounted = await serveInForeground('rclone', server, mnt, log, {
      async beginWrites(expect) {
        const base = await waitIdle(30_000);
        return async () => {
          // Each file closed through the mount becomes one transfer (an encrypting upload into
          // the cipher directory); uploads happen in rclone's handling of the asynchronous
          // FUSE release, so they are counted rather than assumed done when the command exits.
          for (;;) {
            const s = await stats();
            if (s.errors > base.errors) throw new Error(`rclone reported ${s.errors - base.errors} upload error(s); see ${log}`);
            if (s.transfers - base.transfers >= expect.files && (s.transferring?.length ?? 0) === 0) break;
            await sleep(25);
          }
          if (expect.fsync) await run('sync', await listFiles(cipher), { timeoutS: 300 });
        };
      },
      async coldRead() {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const s = await rc<RcloneVfsStats>(port, 'vfs/stats');
          const files = s.diskCache?.files ?? 0;
          if (files === 0) return;
          if (Date.now() > deadline) {
            note(`bench: rclone still caches ${files} plaintext file(s); the next read may not decrypt`);
            return;
          }
          await sleep(100);
        }
      },
    });
    // The remote-control server starts along with the mount; make sure it answers.
    for (let attempt = 0; ; attempt++) {
      try {
        await stats();
        break;
      } catch (err) {
        if (attempt >= 100) {
          await mounted.teardown();
          throw new Error(`rclone remote control on port ${port} does not answer: ${(err as Error).message}`);
        }
        await sleep(50);
      }
    }
    return mounted;
  },
};

// ---------------------------------------------------------------- sealfs

/** The built CLI; SEALFS_BENCH_CLI may point at another build. */
const SEALFS_CLI = process.env.SEALFS_BENCH_CLI ?? fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const SEALFS_INIT = ['--kdf-target-ms', '50'];

/**
 * `sealfs mount` is expected to return once mounted and keep serving in the background, with the
 * serving pid in --pid-file. A mount command that instead keeps running once the mount is up is
 * taken to be the server itself.
 */
export const sealfs: Driver = {
  name: 'sealfs',
  describe:
    `XDG_CONFIG_HOME=DIR/config (key store in the temp dir); node dist/src/cli/main.js init CIPHER --passphrase-file F ${SEALFS_INIT.join(' ')}; ` +
    `node dist/src/cli/main.js mount CIPHER MNT --passphrase-file F --pid-file P; node dist/src/cli/main.js unmount MNT`,
  async setup(dir, options = {}) {
    if (!existsSync(SEALFS_CLI)) throw new Unavailable(`${SEALFS_CLI} does not exist (not built?)`);
    const { cipher, mnt } = await makeDirs(dir);
    const pass = join(dir, 'passphrase');
    const pidFile = join(dir, 'sealfs.pid');
    const log = join(dir, 'sealfs-mount.log');
    await writePassphrase(pass);
    const cli = (...args: string[]) => [SEALFS_CLI, ...args];
    // The vault's key goes to a key store inside the benchmark's directory, not ~/.config/sealfs.
    const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') };
    try {
      await run(process.execPath, cli('init', cipher, '--passphrase-file', pass, ...SEALFS_INIT), { timeoutS: 60, env, log: join(dir, 'sealfs-init.log') });
    } catch (err) {
      if (err instanceof CommandError) throw new Unavailable(`sealfs init failed: ${err.message}`);
      throw err;
    }

    const others = options.allowOther ? ALLOW_OTHER_ARGS.sealfs : [];
    const launcher = spawnServer(process.execPath, cli('mount', cipher, mnt, '--passphrase-file', pass, '--pid-file', pidFile, ...others), log, env);
    let serverPid: number | undefined;
    let foreground = false;
    let wasMounted = false;

    const teardown = once(async () => {
      if (await isMounted(mnt)) {
        try {
          await run(process.execPath, cli('unmount', mnt), { timeoutS: 30, env, log: join(dir, 'sealfs-unmount.log') });
        } catch (err) {
          note(`bench: sealfs unmount failed (${(err as Error).message.split('\n')[0]}); using fusermount -u`);
        }
        await fuseUnmount(mnt);
      }
      // A launcher that never got the mount up is not going to exit by itself.
      const grace = wasMounted ? EXIT_TIMEOUT_MS : 500;
      if (!(await waitExit(launcher, grace)) && launcher.pid !== undefined) await endProcess(launcher.pid);
      if (serverPid !== undefined && serverPid !== launcher.pid && !(await waitPidGone(serverPid, EXIT_TIMEOUT_MS))) {
        note(`bench: sealfs server (pid ${serverPid}) still running after unmount; ending it`);
        await endProcess(serverPid);
      }
    });
    const unregister = onAbort(teardown);
    const fail = async (why: string): Promise<never> => {
      await teardown();
      unregister();
      const tail = readTail(log).trim().split('\n').slice(-5).join('\n');
      throw new Unavailable(`sealfs mount: ${why}${tail ? `\n${tail}` : ''}`);
    };

    // Wait for either "the mount command returned" (daemon) or "mounted while it still runs".
    const deadline = Date.now() + MOUNT_TIMEOUT_MS;
    let mountedSince: number | undefined;
    let exitedAt: number | undefined;
    for (;;) {
      const exited = launcher.exitCode !== null || launcher.signalCode !== null;
      if (exited && launcher.exitCode !== 0) return fail(`exited with ${launcher.exitCode ?? launcher.signalCode}`);
      const up = await isMounted(mnt);
      wasMounted ||= up;
      if (exited) {
        if (up) break;
        exitedAt ??= Date.now();
        if (Date.now() - exitedAt > 5000) return fail(`returned, but ${mnt} is not mounted`);
      } else if (up) {
        mountedSince ??= Date.now();
        // A daemonising launcher exits right after the mount appears; one still running is the server.
        if (Date.now() - mountedSince > 3000) {
          foreground = true;
          break;
        }
      } else if (Date.now() > deadline) {
        return fail(`${mnt} not mounted after ${MOUNT_TIMEOUT_MS / 1000} s`);
      }
      await sleep(50);
    }

    for (let attempt = 0; attempt < 40 && serverPid === undefined; attempt++) {
      const text = await readFile(pidFile, 'utf8').catch(() => '');
      const pid = Number.parseInt(text.trim(), 10);
      if (Number.isInteger(pid) && pid > 0) serverPid = pid;
      else await sleep(50);
    }
    if (serverPid === undefined && foreground) serverPid = launcher.pid;
    if (serverPid === undefined) note(`bench: sealfs wrote no pid to ${pidFile}; its memory cannot be measured`);
    else if (!alive(serverPid)) {
      note(`bench: sealfs pid ${serverPid} from ${pidFile} is not running; its memory cannot be measured`);
      serverPid = undefined;
    } else if (!(await holdsDevFuse(serverPid))) {
      note(`bench: sealfs pid ${serverPid} does not hold /dev/fuse open; is it really the serving process?`);
    }
    note(`bench: sealfs mounted (${foreground ? 'mount command serves in the foreground' : 'daemon'}), serving pid ${serverPid ?? 'unknown'}`);

    return {
      mnt,
      ...(serverPid === undefined ? {} : { pid: serverPid }),
      teardown: async () => {
        await teardown();
        unregister();
      },
    };
  },
};

export const DRIVERS: Readonly<Record<SystemName, Driver>> = { plain, sealfs, gocryptfs, rclone };
