/**
 * How `sealfs status` learns what a mount's server is doing. /proc/self/mountinfo is the
 * truth of what is mounted (mountinfo.ts); each server adds its own figures in one small
 * JSON file (statusDirs in src/vault/paths.ts: the user's runtime folder, else the state
 * folder), rewritten at most once a second and only when a figure changed, always with
 * asynchronous calls (the server's event loop is what serves the mount), and removed when
 * the mount ends. A file whose mount is gone and whose server no longer runs (it was
 * killed) is ignored, and removed by the next reader.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readControlFile } from '../vault/controlfile.js';
import { isInside } from '../vault/paths.js';
import type { ProblemCounts } from '../vault/problems.js';
import { isFuse, isReadOnly, isSealfs, readMounts, type MountEntry } from './mountinfo.js';
import type { MountState } from './unmount.js';

const STATUS_FORMAT = 'sealfs-mount-status';
const STATUS_VERSION = 1;
/** How often a server looks whether its figures changed. */
const PUBLISH_MS = 1000;
/** How long a mount gets to answer `status`'s probe before it counts as hung (node's start included). */
const PROBE_MS = 4000;
/** A status file is a few hundred bytes; anything larger is not one. */
const MAX_STATUS_BYTES = 64 * 1024;
/** mount-PID-CONNECTION.json: one per mount, named so that two servers never share one. */
const STATUS_FILE = /^mount-(\d+)-(\d+)\.json$/;
/** What a server killed while writing its status file leaves (see publishStatus). */
const PARTIAL_FILE = /^mount-(\d+)-(\d+)\.json\.partial$/;

/** The figures a server changes while it serves. */
export interface ServerFigures {
  /** Open handles (PlainFs.openHandles). */
  readonly openFiles: number;
  readonly problems: ProblemCounts;
}

/** What a server publishes: who it is, what it serves, and its figures. */
export interface StatusRecord extends ServerFigures {
  readonly format: typeof STATUS_FORMAT;
  readonly version: number;
  readonly pid: number;
  readonly mountpoint: string;
  /** The mount's "major:minor" (mountinfo's), which tells it from a later mount at the same place. */
  readonly device: string;
  /** The cipher folder, as the server opened it. */
  readonly vault: string;
  /** The crypto backend in use. */
  readonly backend: string;
  /** When the mount began, and when the figures were last written (ISO 8601). */
  readonly since: string;
  readonly updated: string;
}

export interface PublishOptions {
  /** Folders to publish in, in order of preference (statusDirs). */
  readonly dirs: readonly string[];
  readonly mountpoint: string;
  readonly device: string;
  readonly connection: number;
  readonly vault: string;
  readonly backend: string;
  readonly figures: () => ServerFigures;
  readonly log: (line: string) => void;
}

export interface StatusPublisher {
  /** Stops publishing and removes the file (once a write in progress is done). */
  stop(): Promise<void>;
}

/**
 * The first folder of `dirs` (statusDirs) that exists or can be made, private to the user
 * and outside the mount. Only the last, in the state folder, is made with its parents: a
 * runtime folder is the system's to make (root making /run/user/0 would confuse logind).
 */
async function placeFor(dirs: readonly string[], mountpoint: string): Promise<string> {
  let last: unknown;
  for (const [i, dir] of dirs.entries()) {
    // A folder inside the mount would make the server write through itself.
    if (isInside(dir, mountpoint)) continue;
    try {
      await mkdir(dir, { recursive: i === dirs.length - 1, mode: 0o700 });
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return dir;
      last = err;
    }
  }
  throw new Error(`no folder to publish the mount's status in (${dirs.join(', ')}): ${(last as Error | undefined)?.message ?? 'all are inside the mount'}`);
}

/**
 * Publishes a mount's status file, and again whenever its figures change, until stop().
 * Resolves once the first one is written (or could not be), so that a `sealfs status` run
 * right after `sealfs mount` returns finds it.
 */
export async function publishStatus(options: PublishOptions): Promise<StatusPublisher> {
  const since = new Date().toISOString();
  const name = `mount-${process.pid}-${options.connection}.json`;
  let path: string | undefined;
  let written = '';
  let told = false;
  let stopped = false;
  let writing: Promise<void> | undefined;

  const write = async (): Promise<void> => {
    const figures = options.figures();
    const text = JSON.stringify(figures);
    if (text === written) return;
    path ??= join(await placeFor(options.dirs, options.mountpoint), name);
    const record: StatusRecord = {
      format: STATUS_FORMAT,
      version: STATUS_VERSION,
      pid: process.pid,
      mountpoint: options.mountpoint,
      device: options.device,
      vault: options.vault,
      backend: options.backend,
      since,
      updated: new Date().toISOString(),
      ...figures,
    };
    // Written aside and renamed: a reader sees the old file or the new one, never half of one.
    const partial = `${path}.partial`;
    await writeFile(partial, JSON.stringify(record) + '\n', { mode: 0o600 });
    await rename(partial, path);
    written = text;
  };
  const tick = (): void => {
    if (stopped || writing) return;
    writing = write()
      .catch((err: unknown) => {
        // Told once: the mount goes on serving, `sealfs status` just has no figures for it.
        if (!told) options.log(`status: ${(err as Error).message}`);
        told = true;
      })
      .finally(() => {
        writing = undefined;
      });
  };
  tick();
  await writing;
  const timer = setInterval(tick, PUBLISH_MS).unref();

  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await writing;
      if (path) await rm(path, { force: true }).catch(() => undefined);
      if (path) await rm(`${path}.partial`, { force: true }).catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------- reading

const isCount = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0;
const isText = (s: unknown): s is string => typeof s === 'string';

/** A status file's record when it has the shape publishStatus writes, else undefined. */
function parseRecord(text: string): StatusRecord | undefined {
  let r: Partial<StatusRecord>;
  try {
    r = JSON.parse(text) as Partial<StatusRecord>;
  } catch {
    return undefined;
  }
  const p = r?.problems;
  const valid =
    r?.format === STATUS_FORMAT &&
    r.version === STATUS_VERSION &&
    isCount(r.pid) &&
    [r.mountpoint, r.device, r.vault, r.backend, r.since, r.updated].every(isText) &&
    isCount(r.openFiles) &&
    typeof p === 'object' &&
    p !== null &&
    isCount(p.integrityFailures) &&
    isCount(p.undecryptableNames) &&
    isCount(p.conflictCopies) &&
    (p.lastIntegrityFailure === null || isText(p.lastIntegrityFailure));
  return valid ? (r as StatusRecord) : undefined;
}

interface FoundRecord {
  readonly path: string;
  readonly record: StatusRecord;
}

/**
 * Every status file in `dirs` that reads as one (a folder that does not exist holds none);
 * half-written ones of servers that no longer run are removed on the way.
 */
async function readRecords(dirs: readonly string[]): Promise<FoundRecord[]> {
  const found: FoundRecord[] = [];
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const writer = PARTIAL_FILE.exec(name)?.[1];
      if (writer !== undefined && !(await processRuns(Number(writer)))) await rm(join(dir, name), { force: true }).catch(() => undefined);
    }
    for (const name of names.filter((n) => STATUS_FILE.test(n))) {
      const path = join(dir, name);
      const read = await readControlFile(path, MAX_STATUS_BYTES);
      const record = read.ok ? parseRecord(read.bytes.toString('utf8')) : undefined;
      if (record) found.push({ path, record });
    }
  }
  return found;
}

/** Whether process `pid` runs (EPERM: it does, as another user's). */
async function processRuns(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed server stays a zombie until a parent reaps it, and a zombie answers kill(pid, 0).
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * probeMount (unmount.ts) made in a child process: a stat of a hung mount never returns, and
 * a thread of this process stuck in one would keep it from exiting (libuv joins its threads at
 * exit; `sealfs unmount` aborts the connection, which frees it, but `status` only looks). A
 * child stuck there is killed.
 */
function probeApart(mountpoint: string): Promise<MountState> {
  const DEAD = 3;
  const script = `require('node:fs').stat(process.argv[1], (e) => process.exit(e && (e.code === 'ENOTCONN' || e.code === 'ECONNABORTED') ? ${DEAD} : 0))`;
  return new Promise((resolvePromise) => {
    execFile(process.execPath, ['-e', script, mountpoint], { timeout: PROBE_MS, killSignal: 'SIGKILL' }, (err) => {
      if (!err) return resolvePromise('alive');
      if (err.killed) return resolvePromise('hung');
      // Any other answer (no access: another user's mount) comes from a server that answers.
      resolvePromise(err.code === DEAD ? 'dead' : 'alive');
    });
  });
}

/** One sealfs mount as `sealfs status` shows it. */
export interface MountReport {
  readonly entry: MountEntry;
  /** alive: its server answers; dead: its server ended (ENOTCONN); hung: it does not answer. */
  readonly state: MountState;
  readonly readOnly: boolean;
  /** What its server published, if anything was found (not for a server of another user or session). */
  readonly record?: StatusRecord;
}

/**
 * The sealfs mounts that `select` picks, each with its state and what its server published.
 * Status files of mounts that are gone and whose server no longer runs are removed.
 */
export async function mountReports(dirs: readonly string[], select: (entry: MountEntry) => boolean): Promise<MountReport[]> {
  const [mounts, records] = await Promise.all([readMounts(), readRecords(dirs)]);
  const sealfs = mounts.filter((entry) => isFuse(entry) && isSealfs(entry));
  const recordOf = (entry: MountEntry) => records.find(({ record }) => record.mountpoint === entry.mountpoint && record.device === entry.device)?.record;
  for (const { path, record } of records) {
    if (!sealfs.some((entry) => recordOf(entry) === record) && !(await processRuns(record.pid))) await rm(path, { force: true }).catch(() => undefined);
  }
  return Promise.all(
    sealfs.filter(select).map(async (entry): Promise<MountReport> => {
      const record = recordOf(entry);
      // A server known to be gone needs no probe; otherwise the mount itself answers (or not).
      const state = record && !(await processRuns(record.pid)) ? 'dead' : await probeApart(entry.mountpoint);
      return { entry, state, readOnly: isReadOnly(entry), ...(record ? { record } : {}) };
    }),
  );
}
