import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { readMounts } from '../../src/fs/mountinfo.js';
import { packageRoot } from '../../src/packageroot.js';

/**
 * Child processes, mounts and clean-up for the benchmarks; the process helpers (running a
 * program detached with a time limit, whether a pid is alive, ending one, waiting for a
 * condition, a free TCP port) are also the tests' (test/ imports them from here).
 *
 * Every command runs in a child process; this process never touches a mount point except
 * through them and through /proc/self/mountinfo (FUSE servers are children too, so even a
 * blocking call would not deadlock, but none is made). Workload commands stay in our process group
 * (Ctrl-C reaches them too) and are also killed by pid on abort; FUSE servers run in their
 * own process group so that Ctrl-C cannot kill them before their mount is taken down in order.
 */

export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface RunOptions {
  /** Kill the command (SIGKILL, by pid) after this many seconds. */
  readonly timeoutS?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Where the command's stdout goes: 'ignore' or 'pipe' (returned). */
  readonly stdout?: 'ignore' | 'pipe';
  /**
   * Append stdout and stderr to this file instead of piping them (for commands that leave a
   * daemon behind, which would otherwise hold our pipes open); its tail is quoted on failure.
   */
  readonly log?: string;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

const running = new Set<ChildProcess>();
const STDERR_KEEP = 16 * 1024;

function tail(text: string, max: number): string {
  return text.length > max ? text.slice(text.length - max) : text;
}

/** The last few KiB of a (small, local, non-FUSE) log file; '' if unreadable. */
export function readTail(path: string): string {
  try {
    return tail(readFileSync(path, 'utf8'), STDERR_KEEP);
  } catch {
    return '';
  }
}

/**
 * Runs a command to completion; rejects with its stderr when it fails. `seconds` is the wall
 * time from spawn to exit (monotonic clock), which is what the benchmark reports.
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const logFd = options.log === undefined ? undefined : openSync(options.log, 'a');
    const stdio: StdioOptions = logFd === undefined ? ['ignore', options.stdout ?? 'ignore', 'pipe'] : ['ignore', logFd, logFd];
    const start = process.hrtime.bigint();
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio, env: options.env ?? process.env });
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = tail(stderr + chunk, STDERR_KEEP)));
    let timedOut = false;
    const timer =
      options.timeoutS === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutS * 1000);
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    // 'close' comes once the command has exited and its pipes are drained. A command that leaves
    // a daemon behind must be given `log` (a file, no pipes): the daemon would hold pipes open.
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (timer) clearTimeout(timer);
      running.delete(child);
      if (options.log !== undefined) stderr = readTail(options.log);
      if (code === 0) return resolve({ stdout, stderr, seconds });
      const why = timedOut ? `timed out after ${options.timeoutS} s` : signal ? `killed by ${signal}` : `exit code ${code}`;
      const detail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new CommandError(`${[cmd, ...args].join(' ')}: ${why}${detail ? `\n${detail}` : ''}`, code, stderr));
    });
  });
}

/** Kills every workload command still running (on abort). */
export function killRunning(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** Resolves true once the process has exited, false if it is still alive after `timeoutMs`. */
export async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Is a process still running? An exited one not yet reaped (a zombie) is not. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits for a process we did not spawn directly (a daemon) to go away. */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  return waitFor(`pid ${pid} to exit`, () => !alive(pid), timeoutMs).then(
    () => true,
    () => false,
  );
}

/** Ends a process we started: SIGTERM, then SIGKILL after a grace period. By pid only. */
export async function endProcess(pid: number, graceMs = 3000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitPidGone(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitPidGone(pid, graceMs);
}

export function sleep(ms: number): Promise<void> {
  return delay(ms);
}

/** Polls `condition` until it holds; resolves to the milliseconds that took, rejects after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 50): Promise<number> {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(stepMs);
  }
  return Date.now() - start;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for the caller to bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('the kernel gave no port'))));
    });
  });
}

/** What a program run by runDetached did. */
export interface Run {
  /** Exit code; 128 + n for signal n (as a shell reports it); -1 if it could not start. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes. */
  out: Buffer;
  stderr: string;
  /** Ended (SIGKILL to its process group) because it ran out of time. */
  timedOut: boolean;
}

export interface DetachedOptions {
  cwd?: string;
  /** Written to its stdin (which is otherwise closed). */
  input?: string | Buffer;
  /** Called with the child once spawned (to end it early, e.g. when a test ends). */
  onSpawn?: (child: ChildProcess) => void;
}

/**
 * Runs a program to its end, detached: in its own session and process group, so that a
 * passphrase prompt can never reach a terminal and hang, and the whole group can be ended.
 * After `timeoutMs` the group gets SIGKILL. Never rejects: a program that cannot start
 * gives code -1 and the reason in stderr.
 */
export function runDetached(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000, options: DetachedOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      detached: true,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    options.onSpawn?.(child);
    const out: Buffer[] = [];
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout: '', out: Buffer.alloc(0), stderr: `${command}: ${err.message}`, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const buf = Buffer.concat(out);
      resolve({ code: code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : -1), signal, stdout: buf.toString('utf8'), out: buf, stderr, timedOut });
    });
  });
}

/** Sends `signal` to the process group of a child started detached (to the child alone if that fails). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------- mounts

/** Mount points (absolute, as the kernel reports them), read with the product's own mountinfo parser. */
export async function mountPoints(): Promise<string[]> {
  return (await readMounts()).map((entry) => entry.mountpoint);
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

/** Mount points at or below a directory. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await mountPoints()).filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Canonical path of a mount point (the kernel reports resolved paths). */
export async function canonical(path: string): Promise<string> {
  return realpath(path);
}

/**
 * Waits until `path` is a mount point. Fails early when `server` (the process expected to serve
 * it) exits first, and after `timeoutMs`.
 */
export async function waitMounted(path: string, timeoutMs: number, server?: ChildProcess, describe = 'the mount'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await isMounted(path)) return;
    if (server && (server.exitCode !== null || server.signalCode !== null)) {
      throw new Error(`${describe} exited (${server.exitCode ?? server.signalCode}) before ${path} was mounted`);
    }
    if (Date.now() > deadline) throw new Error(`${path} not mounted after ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

/** shared/tools/fuse-unstick beside the repository (CI: ../shared of a fresh clone; here /work/shared). */
export const UNSTICK = [resolve(packageRoot(), '..', 'shared', 'tools', 'fuse-unstick'), '/work/shared/tools/fuse-unstick'].find((p) => existsSync(p));

/** Why FUSE mounts cannot be made here, or undefined. */
export function fuseProblem(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  if (spawnSync('fusermount3', ['-V'], { encoding: 'utf8' }).error) return 'fusermount3 is not installed (Debian package fuse3)';
  return undefined;
}

/** Takes a FUSE mount down whatever state it is in: -u, then -u -z, then fuse-unstick, then umount -l. */
export async function forceUnmount(mnt: string, stepTimeoutMs = 30_000): Promise<void> {
  const steps: [string, string[]][] = [
    ['fusermount3', ['-u', mnt]],
    ['fusermount3', ['-u', '-z', mnt]],
    ...(UNSTICK ? ([[UNSTICK, [mnt]]] as [string, string[]][]) : []),
    ['umount', ['-l', mnt]],
  ];
  for (const [command, args] of steps) {
    if (!(await isMounted(mnt))) return;
    await runDetached(command, args, process.env, stepTimeoutMs, { cwd: '/' });
  }
}

/**
 * Takes a benchmark's FUSE mount down: `fusermount -u` (retried while busy), then, if it is
 * still there, whatever forceUnmount takes.
 */
export async function fuseUnmount(path: string): Promise<void> {
  for (let attempt = 0; attempt < 10 && (await isMounted(path)); attempt++) {
    try {
      await run('fusermount3', ['-u', path], { timeoutS: 20 });
      return;
    } catch (err) {
      if (attempt === 0) note(`bench: fusermount -u ${path} failed (${(err as Error).message.split('\n').pop()}); retrying`);
      await sleep(300);
    }
  }
  if (!(await isMounted(path))) return;
  note(`bench: ${path} is stuck; clearing it`);
  await forceUnmount(path, 20_000);
  if (await isMounted(path)) note(`bench: could not clear ${path}`);
}

// ---------------------------------------------------------------- clean-up on exit and signals

type Cleanup = () => Promise<void>;
const cleanups = new Map<number, Cleanup>();
let nextCleanupId = 0;

/** Registers clean-up to run on SIGINT/SIGTERM/SIGHUP; returns the function that unregisters it. */
export function onAbort(cleanup: Cleanup): () => void {
  const id = nextCleanupId++;
  cleanups.set(id, cleanup);
  return () => cleanups.delete(id);
}

/** Wraps an async function so that every call after the first returns the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let promise: Promise<void> | undefined;
  return () => (promise ??= fn());
}

let aborting = false;

async function abort(signal: NodeJS.Signals): Promise<void> {
  if (aborting) {
    note(`bench: ${signal} again; still cleaning up (unmounting), please wait`);
    return;
  }
  aborting = true;
  note(`bench: ${signal}: stopping, unmounting and removing temporary files`);
  killRunning();
  // Most recent first: mounts are taken down before the directory holding them is removed.
  for (const cleanup of [...cleanups.values()].reverse()) {
    try {
      await cleanup();
    } catch (err) {
      note(`bench: clean-up failed: ${(err as Error).message}`);
    }
  }
  process.exit(signal === 'SIGINT' ? 130 : signal === 'SIGHUP' ? 129 : 143);
}

export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void abort(signal));
  }
}

export function isAborting(): boolean {
  return aborting;
}

// ---------------------------------------------------------------- memory of a serving process

async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Children of every process in `roots`, recursively (from /proc/PID/stat; no CONFIG_PROC_CHILDREN needed). */
async function descendants(root: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * Peak resident memory of a serving process: VmRSS of it plus its descendants (if it forks
 * helpers), sampled every `intervalMs`, and its own VmHWM (the kernel's exact peak) at the end.
 */
export class RssSampler {
  private peakKiB = 0;
  private family: number[];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private lastScan = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {
    this.family = [pid];
  }

  start(): void {
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample());
    }, this.intervalMs);
  }

  private async sample(): Promise<void> {
    if (Date.now() - this.lastScan > 1000) {
      this.lastScan = Date.now();
      this.family = [this.pid, ...(await descendants(this.pid))];
    }
    let total = 0;
    for (const pid of this.family) total += (await statusKiB(pid, 'VmRSS')) ?? 0;
    this.peakKiB = Math.max(this.peakKiB, total);
  }

  /** Stops sampling; call while the process is still alive so that VmHWM can be read. */
  async stop(): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    await this.sampling;
    await this.sample();
    const hwm = (await statusKiB(this.pid, 'VmHWM')) ?? 0;
    return Math.max(this.peakKiB, hwm) / 1024;
  }
}

/**
 * Waits for, then holds, a lock that test files running at once in other processes share for
 * a machine-wide thing (such as /sbin/mount.fuse.sealfs): a folder made with mkdir (which only
 * one process can make), holding its owner's pid; one whose owner is gone is taken over.
 * Resolves to the function that lets go of it.
 */
export async function machineLock(name: string, timeoutMs = 300_000): Promise<() => Promise<void>> {
  const dir = join(tmpdir(), 'sealfs-test-locks', name);
  await mkdir(dirname(dir), { recursive: true });
  await waitFor(`the machine lock ${name}`, async () => {
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(await readFile(join(dir, 'pid'), 'utf8').catch(() => ''), 10);
      // No pid yet: its owner is between mkdir and writing it, or died there long ago.
      const gone = owner > 0 ? !alive(owner) : Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? Date.now()) > 10_000;
      if (gone) await rm(dir, { recursive: true, force: true });
      return false;
    }
    await writeFile(join(dir, 'pid'), String(process.pid));
    return true;
  }, timeoutMs, 200);
  return () => rm(dir, { recursive: true, force: true });
}
