/**
 * Shared helpers of the mount-*.test.ts suites (not a test file itself: vitest only collects
 * *.test.ts): create vaults, mount them through `sealfs mount` in a separate
 * server process, run programs against the mount, and always clean up.
 *
 * useMountHarness() registers the hooks of one test file:
 * - beforeAll: a temp root (the CLI is test/build.ts's, built once per run);
 * - afterEach: the programs the test started and that still run are ended (their own
 *   process groups); every mount the test made (scope 'test') is taken down: `fusermount -u`,
 *   then `fusermount -u -z`, then shared/tools/fuse-unstick, then `umount -l`; its server is
 *   given 5 s to notice and end, then ended by its pid (only if that pid still runs our CLI);
 * - afterAll: the same for the file's shared mounts (scope 'file'), then a check of
 *   /proc/self/mountinfo that nothing is left mounted under the temp root.
 *
 * The test process never serves a mount itself, so it may use the mount freely; it still
 * uses only asynchronous calls on it.
 */
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { parseRecoveryKey } from '../src/vault/recovery.js';
import { openVault } from '../src/vault/vault.js';
import { readMounts, type MountEntry } from '../src/fs/mountinfo.js';
import { CLI } from './build.js';
import { alive, endProcess, forceUnmount, fuseProblem, isMounted, killGroup, runDetached, sleep, waitFor, type Run } from '../bench/lib/proc.js';

export { alive, isMounted, sleep, waitFor, type Run };


/** The documented bounds: attribute/entry timeout 1 s, listing and open-file revalidation 1 s. */
export const SYNC_VISIBLE_MS = 2000;

/**
 * Short cache times (`sealfs mount --cache-time`) for tests that wait for a cache to expire
 * but are not about the default times: they wait SHORT_CACHE_MS instead of a second.
 */
export const SHORT_CACHE_MS = 200;
export const SHORT_CACHE_ARGS: readonly string[] = ['--cache-time', String(SHORT_CACHE_MS / 1000)];

/** Why FUSE tests cannot run here, or undefined. */
export const FUSE_PROBLEM = fuseProblem();


export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * A test that reproduces a known bug: registered with it.fails (green while the bug is there,
 * red once it is fixed: then make it an ordinary test). SEALFS_KNOWN_BUGS=fail runs these as
 * ordinary tests, so they show as failures.
 */
export const knownBug: typeof it.fails = process.env.SEALFS_KNOWN_BUGS === 'fail' ? (it as unknown as typeof it.fails) : it.fails;

/**
 * Is this command line (/proc/PID/cmdline) one of our CLI's servers of `cipherDir`? Before it
 * mounts, a server's is `node CLI mount CIPHERDIR …`; once it serves, its process title
 * `sealfs: CIPHERDIR on MOUNTPOINT` (src/fs/mount.ts serverTitle) is written over it.
 */
function isServerOf(cmdline: string, cli: string, cipherDir: string): boolean {
  const args = cmdline.split('\0');
  return (args.includes(cli) && args.includes('mount') && args.includes(cipherDir)) || args[0]!.startsWith(`sealfs: ${cipherDir} on `);
}

/** Servers (ours: this CLI) serving `cipherDir`, found in /proc without touching anything else. */
export async function serversFor(cli: string, cipherDir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (isServerOf(cmdline, cli, cipherDir) && alive(Number(name))) out.push(Number(name));
  }
  return out;
}

// ---- processes ----------------------------------------------------------------------

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string | Buffer;
}

// ---- mount table ----------------------------------------------------------------------

/** Mounts as the product reads them (src/fs/mountinfo.ts). */
export type MountRow = MountEntry;
export const mountRows = readMounts;


// ---- vaults and mounts ----------------------------------------------------------------------

export interface TestVault {
  readonly dir: string;
  readonly cipher: string;
  readonly mnt: string;
  readonly keystore: string;
  readonly pass: string;
  readonly passphrase: string;
  readonly pidFile: string;
  readonly logFile: string;
  /** The master key, once masterKey() fetched it with `sealfs key export`. */
  key?: Uint8Array;
}

export type Scope = 'test' | 'file';

export interface MountResult extends Run {
  pid?: number;
}

export class MountHarness {
  root = '';
  /** The CLI every mount runs (test/build.ts). */
  readonly cli = CLI;
  private counter = 0;
  private readonly mounts = new Map<string, Scope>();
  private readonly servers = new Map<number, Scope>();
  /** Programs started through spawn() that may still run: ended after each test. */
  private readonly children = new Set<ChildProcess>();

  constructor(readonly label: string) {}

  env(): NodeJS.ProcessEnv {
    return { ...process.env, HOME: join(this.root, 'home'), XDG_STATE_HOME: join(this.root, 'state'), XDG_CONFIG_HOME: join(this.root, 'config') };
  }

  /** Runs a program; it is ended (its process group) when it runs out of time or the test ends. */
  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): Promise<Run> {
    let started: ChildProcess | undefined;
    const onSpawn = (child: ChildProcess) => {
      started = child;
      this.children.add(child);
    };
    return runDetached(command, args, options.env ?? this.env(), options.timeoutMs, {
      cwd: options.cwd ?? this.root,
      ...(options.input === undefined ? {} : { input: options.input }),
      onSpawn,
    }).finally(() => started && this.children.delete(started));
  }

  /** `sealfs ARGS` with this file's HOME/XDG folders. */
  sealfs(args: readonly string[], options: SpawnOptions = {}): Promise<Run> {
    return this.spawn(process.execPath, [this.cli, ...args], options);
  }

  /** `sealfs COMMAND VAULT ARGS --keystore … --passphrase-file …`. */
  sealfsKeyed(v: TestVault, command: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<Run> {
    return this.sealfs([command, v.cipher, ...args, '--keystore', v.keystore, '--passphrase-file', v.pass], options);
  }

  /** python3 -c SCRIPT ARGS. */
  python(script: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<Run> {
    return this.spawn('python3', ['-c', script, ...args], options);
  }

  /**
   * A new folder with a vault (fast KDF, its own key store), an empty mount point, paths for pid
   * and log; `dir` and `logFile` put them elsewhere (a small file system of the test's own).
   */
  async vault(options: { init?: boolean; initArgs?: string[]; passphrase?: string; dir?: string; logFile?: string } = {}): Promise<TestVault> {
    const dir = options.dir ?? join(this.root, `v${this.counter++}`);
    const v: TestVault = {
      dir,
      cipher: join(dir, 'cipher'),
      mnt: join(dir, 'mnt'),
      keystore: join(dir, 'keystore'),
      pass: join(dir, 'pass'),
      passphrase: options.passphrase ?? `${this.label} passphrase ${this.counter}`,
      pidFile: join(dir, 'server.pid'),
      logFile: options.logFile ?? join(dir, 'server.log'),
    };
    await mkdir(v.mnt, { recursive: true });
    await writeFile(v.pass, `${v.passphrase}\n`, { mode: 0o600 });
    if (options.init !== false) {
      const init = await this.sealfs(['init', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass, '--kdf-target-ms', '20', ...(options.initArgs ?? [])]);
      expect(init.code, init.stderr).toBe(0);
    }
    return v;
  }

  /**
   * `sealfs mount` (background server, --pid-file, --log-file); the mount and its server are
   * registered for cleanup: after this test (scope 'test', the default) or after the file
   * (scope 'file': a mount shared by the tests of a file, made in a beforeAll).
   */
  async mount(v: TestVault, options: { args?: string[]; scope?: Scope; mnt?: string; passFile?: string } = {}): Promise<MountResult> {
    const scope = options.scope ?? 'test';
    const mnt = options.mnt ?? v.mnt;
    this.mounts.set(mnt, scope);
    await rm(v.pidFile, { force: true });
    const result = await this.sealfs(
      ['mount', v.cipher, mnt, '--keystore', v.keystore, '--passphrase-file', options.passFile ?? v.pass, '--pid-file', v.pidFile, '--log-file', v.logFile, ...(options.args ?? [])],
      { timeoutMs: 60_000 },
    );
    const pid = Number.parseInt((await readFile(v.pidFile, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isInteger(pid) && pid > 0) {
      this.servers.set(pid, scope);
      return { ...result, pid };
    }
    return result;
  }

  /** mount() that must succeed; returns the server's pid. */
  async mountOk(v: TestVault, options: { args?: string[]; scope?: Scope } = {}): Promise<number> {
    const m = await this.mount(v, options);
    expect(m.code, m.stderr).toBe(0);
    expect(await isMounted(v.mnt)).toBe(true);
    expect(m.pid).toBeDefined();
    return m.pid!;
  }

  /** `sealfs unmount`, which must succeed; waits for the server to end. */
  async unmountOk(v: TestVault, pid?: number): Promise<void> {
    const u = await this.sealfs(['unmount', v.mnt], { timeoutMs: 30_000 });
    expect(u.code, u.stderr).toBe(0);
    expect(await isMounted(v.mnt)).toBe(false);
    if (pid !== undefined) await waitFor(`server ${pid} to end after unmount`, () => !alive(pid), 15_000);
  }

  /** The vault's master key, from `sealfs key export` (the recovery key) and parseRecoveryKey. */
  async masterKey(v: TestVault): Promise<Uint8Array> {
    if (v.key) return v.key;
    const r = await this.sealfs(['key', 'export', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expect(r.code, r.stderr).toBe(0);
    v.key = parseRecoveryKey(r.stdout.trim());
    return v.key;
  }

  /** Where the entry at plaintext path `plainPath` lives in the cipher folder (read offline). */
  async cipherPathOf(v: TestVault, plainPath: string): Promise<string> {
    const vault = await openVault(v.cipher, await this.masterKey(v), { backend: 'node' });
    return (await vault.tree.resolve(plainPath.startsWith('/') ? plainPath : `/${plainPath}`)).cipherPath;
  }

  /** The server log (--log-file) as lines. */
  async logLines(v: TestVault): Promise<string[]> {
    return (await readFile(v.logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  }

  // ---- hooks ----------------------------------------------------------------------

  async setUp(): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), `sealfs-${this.label}-`));
    if (FUSE_PROBLEM) return;
    await stat(this.cli);
  }

  /** Takes down the mounts and ends the processes of one scope. */
  async cleanUp(scope: Scope): Promise<void> {
    for (const child of [...this.children]) {
      if (child.exitCode === null && child.signalCode === null) killGroup(child, 'SIGKILL');
      this.children.delete(child);
    }
    for (const [mnt, s] of [...this.mounts]) {
      if (s !== scope) continue;
      this.mounts.delete(mnt);
      await forceUnmount(mnt, 15_000);
    }
    for (const [pid, s] of [...this.servers]) {
      if (s !== scope) continue;
      this.servers.delete(pid);
      if (!alive(pid) || !this.isOurServer(pid)) continue;
      await waitFor(`server ${pid} to end`, () => !alive(pid), 5000).catch(() => undefined);
      if (alive(pid) && this.isOurServer(pid)) await endProcess(pid, 5000);
    }
  }

  /** A pid from our pid file is still our server (not a reused pid): our CLI, or its title naming a vault of ours. */
  private isOurServer(pid: number): boolean {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      // Our CLI before it mounts; once it serves, its title (see isServerOf) names a vault of ours.
      return cmdline.includes(this.cli) || cmdline.startsWith(`sealfs: ${this.root}/`);
    } catch {
      return false;
    }
  }

  async tearDown(): Promise<void> {
    await this.cleanUp('test');
    await this.cleanUp('file');
    const left: string[] = [];
    if (this.root) {
      for (const row of await mountRows()) {
        if (row.mountpoint.startsWith(this.root + '/')) {
          await forceUnmount(row.mountpoint, 15_000);
          left.push(row.mountpoint);
        }
      }
    }
    const still = (await mountRows()).filter((row) => this.root && row.mountpoint.startsWith(this.root + '/'));
    // Never delete through a mount that is still there.
    if (this.root && still.length === 0) await rm(this.root, { recursive: true, force: true });
    if (still.length > 0) throw new Error(`still mounted after cleanup: ${still.map((r) => r.mountpoint).join(', ')}`);
    if (left.length > 0) throw new Error(`a test left these mounted (cleared now): ${left.join(', ')}`);
  }
}

/**
 * One harness per test file, its hooks registered: call at the top level of the file, before
 * the file's own hooks (a beforeAll of the file that mounts passes scope 'file').
 */
export function useMountHarness(label: string): MountHarness {
  const h = new MountHarness(label);
  beforeAll(() => h.setUp(), 180_000);
  afterEach(() => h.cleanUp('test'), 90_000);
  afterAll(() => h.tearDown(), 90_000);
  return h;
}

// ---- trees ----------------------------------------------------------------------

export interface TreeEntry {
  /** Path relative to the tree's root. */
  path: string;
  name: string;
  kind: 'dir' | 'file' | 'symlink' | 'other';
}

/** Every entry below `root` (not following symlinks), sorted by path. */
export async function walk(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const visit = async (dir: string) => {
    for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      const kind = entry.isDirectory() ? 'dir' : entry.isSymbolicLink() ? 'symlink' : entry.isFile() ? 'file' : 'other';
      out.push({ path, name: entry.name, kind });
      if (kind === 'dir') await visit(path);
    }
  };
  await visit('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Every file's bytes, every name and every symlink target of a tree: what a sync client uploads. */
export async function treeContents(root: string): Promise<{ names: string[]; targets: string[]; files: { path: string; bytes: Buffer }[] }> {
  const names: string[] = [];
  const targets: string[] = [];
  const files: { path: string; bytes: Buffer }[] = [];
  for (const entry of await walk(root)) {
    names.push(entry.name);
    const full = join(root, entry.path);
    if (entry.kind === 'symlink') targets.push(await readlink(full));
    else if (entry.kind === 'file') files.push({ path: entry.path, bytes: await readFile(full) });
    else if (entry.kind === 'other') files.push({ path: entry.path, bytes: Buffer.from(`(${(await lstat(full)).mode.toString(8)})`) });
  }
  return { names, targets, files };
}

/** Fresh folders under a mount, one per test: `fresh('name')` makes `<mount>/<n>-name`. */
export function freshFolders(mount: () => string): (name: string) => Promise<string> {
  let made = 0;
  return async (name) => {
    const dir = join(mount(), `${made++}-${name}`);
    await mkdir(dir);
    return dir;
  };
}
