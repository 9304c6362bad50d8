/**
 * Helpers for the sync tests (not a test file itself: vitest only collects *.test.ts).
 *
 * - SealfsCli: the CLI of test/build.ts, run as child processes with a private HOME, state and
 *   config folder.
 *   Mounts are served by those child processes, never by the test process.
 * - Mounts: every `sealfs mount` a test makes, and the cleanup that always takes it down
 *   again: `sealfs unmount`, then `fusermount -u`, `fusermount -u -z`, then
 *   shared/tools/fuse-unstick; then the server process (by its pid file) is ended.
 * - SyncthingPair: two real Syncthing instances on 127.0.0.1, each with its own home, driven
 *   only through the REST API, with bounded timeouts everywhere.
 *
 * Environment (for debugging): SEALFS_SYNC_DEBUG=1 logs every Syncthing state poll.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from './build.js';
import { alive, endProcess, forceUnmount, freePort, fuseProblem, isMounted, mountsUnder, runDetached, sleep, waitFor, type Run } from '../bench/lib/proc.js';

export { forceUnmount, fuseProblem, mountsUnder, sleep };

/** Why Syncthing cannot run here, or undefined. */
export function syncthingProblem(): string | undefined {
  const r = spawnSync('syncthing', ['--version'], { encoding: 'utf8', timeout: 15_000 });
  if (r.error || r.status !== 0) return 'syncthing is not installed (Debian package syncthing; scripts/setup.sh installs it)';
  return undefined;
}

// ---------------------------------------------------------------- mounts

/** The sealfs CLI (test/build.ts) with a private HOME, state and config folder. */
export class SealfsCli {
  private constructor(
    /** HOME, XDG_STATE_HOME and XDG_CONFIG_HOME of every command go below this folder. */
    readonly home: string,
  ) {}

  static async create(home: string): Promise<SealfsCli> {
    await mkdir(home, { recursive: true });
    return new SealfsCli(home);
  }

  run(args: string[], timeoutMs = 60_000): Promise<Run> {
    const env = { ...process.env, HOME: join(this.home, 'home'), XDG_STATE_HOME: join(this.home, 'state'), XDG_CONFIG_HOME: join(this.home, 'config') };
    return runDetached(process.execPath, [CLI, ...args], env, timeoutMs);
  }
}

export interface VaultFiles {
  cipher: string;
  keystore: string;
  pass: string;
}

/** `sealfs init` with a fast KDF; returns the printed recovery key. */
export async function initVault(cli: SealfsCli, v: VaultFiles, extra: string[] = []): Promise<string> {
  await writeFile(v.pass, 'sync test passphrase\n', { mode: 0o600 });
  const init = await cli.run(['init', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass, '--kdf-target-ms', '20', ...extra]);
  if (init.code !== 0) throw new Error(`sealfs init failed (${init.code}): ${init.stderr}`);
  return init.stdout.trim();
}

/** Every mount a test file makes; `cleanup()` takes all of them down and ends their servers. */
export class Mounts {
  private readonly mounted = new Map<string, string>(); // mount point → pid file

  constructor(private readonly cli: SealfsCli) {}

  async mount(v: VaultFiles, mnt: string, extra: string[] = []): Promise<number> {
    await mkdir(mnt, { recursive: true });
    const pidFile = `${mnt}.pid`;
    this.mounted.set(mnt, pidFile);
    const logFile = `${mnt}.log`;
    const m = await this.cli.run(['mount', v.cipher, mnt, '--keystore', v.keystore, '--passphrase-file', v.pass, '--pid-file', pidFile, '--log-file', logFile, ...extra]);
    if (m.code !== 0) throw new Error(`sealfs mount failed (${m.code}): ${m.stderr}`);
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
    if (!(await isMounted(mnt))) throw new Error(`${mnt} is not mounted after sealfs mount`);
    return pid;
  }

  async unmount(mnt: string): Promise<void> {
    const pidFile = this.mounted.get(mnt);
    if (await isMounted(mnt)) {
      await this.cli.run(['unmount', mnt], 20_000).catch(() => undefined);
      await forceUnmount(mnt);
    }
    if (pidFile) {
      const pid = Number.parseInt((await readFile(pidFile, 'utf8').catch(() => '')).trim(), 10);
      if (Number.isInteger(pid) && pid > 0) {
        await waitFor(`server ${pid} to exit after unmount`, () => !alive(pid), 5000).catch(() => undefined);
        await endProcess(pid, 5000);
      }
    }
    this.mounted.delete(mnt);
  }

  /** Unmounts everything (also mounts left in a bad state) and ends every server. */
  async cleanup(): Promise<void> {
    for (const mnt of [...this.mounted.keys()]) {
      try {
        await this.unmount(mnt);
      } catch (err) {
        console.warn(`cleanup of ${mnt}: ${(err as Error).message}`);
      }
    }
  }
}

// ---------------------------------------------------------------- Syncthing

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Sets the text of `<name …>value</name>` in a config.xml; the element must exist. */
function setElement(xml: string, name: string, value: string, within?: string): string {
  const scope = within ? new RegExp(`(<${within}[\\s>][\\s\\S]*?</${within}>)`) : undefined;
  const replaceIn = (text: string) => {
    const re = new RegExp(`(<${name}(?:\\s[^>]*)?>)[^<]*(</${name}>)`);
    if (!re.test(text)) throw new Error(`Syncthing config.xml has no <${name}> element${within ? ` in <${within}>` : ''}: unexpected Syncthing version?`);
    return text.replace(re, `$1${value}$2`);
  };
  if (!scope) return replaceIn(xml);
  const match = scope.exec(xml);
  if (!match) throw new Error(`Syncthing config.xml has no <${within}> element`);
  return xml.replace(match[1]!, replaceIn(match[1]!));
}

export interface SyncthingNode {
  readonly name: string;
  readonly home: string;
  readonly folderPath: string;
  readonly guiPort: number;
  readonly listenPort: number;
  readonly apiKey: string;
  readonly deviceId: string;
  readonly logFile: string;
  process?: ChildProcess;
}

export interface FolderStatus {
  state: string;
  needTotalItems: number;
  needBytes: number;
  globalTotalItems: number;
  globalBytes: number;
  localTotalItems: number;
  inSyncFiles: number;
  globalFiles: number;
  pullErrors: number;
  errors: number;
  sequence: number;
}

export interface Completion {
  completion: number;
  needItems: number;
  needDeletes: number;
  needBytes: number;
  sequence: number;
}

export const FOLDER_ID = 'sealfs-vault';

/**
 * Two Syncthing instances sharing one folder (A's folderPath ↔ B's folderPath). config.xml
 * sets, before the first start, the API key, the GUI/REST and sync listen addresses (both
 * on 127.0.0.1) and turns off discovery, relays, NAT, usage and crash reporting and
 * upgrades; the peer devices (each with an explicit address) and the folder are then
 * configured through the REST API.
 */
export class SyncthingPair {
  private constructor(
    readonly a: SyncthingNode,
    readonly b: SyncthingNode,
  ) {}

  other(node: SyncthingNode): SyncthingNode {
    return node === this.a ? this.b : this.a;
  }

  static async start(root: string, folderA: string, folderB: string): Promise<SyncthingPair> {
    const [guiA, listenA, guiB, listenB] = await distinctPorts(4);
    const a = await generate(join(root, 'syncthing-A'), 'A', folderA, guiA!, listenA!);
    const b = await generate(join(root, 'syncthing-B'), 'B', folderB, guiB!, listenB!);
    const pair = new SyncthingPair(a, b);
    try {
      for (const node of [a, b]) launch(node);
      for (const node of [a, b]) await pair.waitUp(node);
      for (const node of [a, b]) await pair.configure(node);
    } catch (err) {
      await pair.stop();
      throw err;
    }
    return pair;
  }

  /** One REST call: bounded by `timeoutMs`; throws on any non-2xx answer. */
  async api<T = unknown>(node: SyncthingNode, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, timeoutMs = 15_000): Promise<T> {
    const response = await fetch(`http://127.0.0.1:${node.guiPort}${path}`, {
      method,
      headers: { 'X-API-Key': node.apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`Syncthing ${node.name}: ${method} ${path}: HTTP ${response.status}: ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async waitUp(node: SyncthingNode): Promise<void> {
    await waitFor(
      `Syncthing ${node.name} to answer on 127.0.0.1:${node.guiPort}`,
      async () => {
        if (node.process?.exitCode !== null && node.process?.exitCode !== undefined) {
          throw new Error(`Syncthing ${node.name} exited (${node.process.exitCode}): ${tail(node.logFile)}`);
        }
        try {
          const pong = await this.api<{ ping: string }>(node, 'GET', '/rest/system/ping', undefined, 2000);
          return pong.ping === 'pong';
        } catch {
          return false;
        }
      },
      30_000,
      100,
    );
  }

  private async configure(node: SyncthingNode): Promise<void> {
    const peer = this.other(node);
    await this.api(node, 'POST', '/rest/config/devices', {
      deviceID: peer.deviceId,
      name: peer.name,
      addresses: [`tcp://127.0.0.1:${peer.listenPort}`],
      compression: 'metadata',
      introducer: false,
      autoAcceptFolders: false,
      paused: false,
    });
    await this.api(node, 'POST', '/rest/config/folders', {
      id: FOLDER_ID,
      label: 'sealfs cipher folder',
      path: node.folderPath,
      type: 'sendreceive',
      devices: [{ deviceID: node.deviceId }, { deviceID: peer.deviceId }],
      rescanIntervalS: 10,
      fsWatcherEnabled: true,
      fsWatcherDelayS: 1,
      ignorePerms: true,
      // Syncthing's conflict copies are what this test is about: keep them (its default is 10,
      // but a folder written without the field would get 0, i.e. no copies at all).
      maxConflicts: -1,
      minDiskFree: { value: 0, unit: '%' },
      paused: false,
    });
    const folder = await this.api<{ maxConflicts: number; fsWatcherEnabled: boolean; path: string }>(node, 'GET', `/rest/config/folders/${FOLDER_ID}`);
    if (folder.maxConflicts !== -1 || !folder.fsWatcherEnabled || folder.path !== node.folderPath) {
      throw new Error(`Syncthing ${node.name}: folder configuration did not take: ${JSON.stringify(folder)}`);
    }
  }

  async connected(): Promise<boolean> {
    for (const node of [this.a, this.b]) {
      const c = await this.api<{ connections: Record<string, { connected: boolean; paused: boolean }> }>(node, 'GET', '/rest/system/connections');
      if (!c.connections[this.other(node).deviceId]?.connected) return false;
    }
    return true;
  }

  /** Pauses the peer device on both sides: the two replicas are offline from each other. */
  async pause(): Promise<void> {
    for (const node of [this.a, this.b]) await this.api(node, 'POST', `/rest/system/pause?device=${this.other(node).deviceId}`);
    await waitFor('both Syncthing instances to drop their connection', async () => !(await this.connected().catch(() => true)), 15_000, 100);
  }

  async resume(): Promise<void> {
    for (const node of [this.a, this.b]) await this.api(node, 'POST', `/rest/system/resume?device=${this.other(node).deviceId}`);
    const t0 = Date.now();
    // A device that was refused while paused is dialled again on Syncthing's next connection
    // loop: usually at once, sometimes only after 5-20 s.
    await waitFor('the Syncthing instances to reconnect', () => this.connected().catch(() => false), 60_000, 100);
    if (process.env.SEALFS_SYNC_DEBUG) console.log(`reconnected after ${Date.now() - t0} ms`);
  }

  /** Rescans the folder on `node` now; the call returns once the scan is done. */
  async scan(node: SyncthingNode): Promise<void> {
    await this.api(node, 'POST', `/rest/db/scan?folder=${FOLDER_ID}`, undefined, 180_000);
  }

  status(node: SyncthingNode): Promise<FolderStatus> {
    return this.api<FolderStatus>(node, 'GET', `/rest/db/status?folder=${FOLDER_ID}`);
  }

  completion(node: SyncthingNode): Promise<Completion> {
    return this.api<Completion>(node, 'GET', `/rest/db/completion?folder=${FOLDER_ID}&device=${this.other(node).deviceId}`);
  }

  /**
   * Rescans both sides, then waits until they agree: connected, both idle with nothing to
   * pull, each 100% complete in the other's view at the other's current index sequence,
   * and the same global item count and size, three polls in a row. Then rescans once more:
   * the sync itself can leave new local files (Syncthing's conflict copies) that only a scan
   * announces; it is settled when such a rescan changes nothing.
   */
  async waitInSync(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let before = '';
    for (let round = 0; ; round++) {
      await this.scan(this.a);
      await this.scan(this.b);
      const after = await this.agreed(deadline, timeoutMs);
      if (after === before) return;
      if (round >= 10) throw new Error(`Syncthing kept changing after ${round} rescans: ${after}`);
      before = after;
    }
  }

  /** Polls until both sides agree (three times in a row); returns both index sequences then. */
  private async agreed(deadline: number, timeoutMs: number): Promise<string> {
    let stable = 0;
    let last = '';
    let sequences = '';
    while (stable < 3) {
      if (Date.now() > deadline) throw new Error(`Syncthing did not settle within ${timeoutMs} ms; last state: ${last}; folder errors: ${await this.folderErrors()}`);
      await sleep(250);
      try {
        const [sa, sb, ca, cb, conn] = await Promise.all([this.status(this.a), this.status(this.b), this.completion(this.a), this.completion(this.b), this.connected()]);
        last = JSON.stringify({ conn, A: pick(sa), B: pick(sb), AviewB: ca, BviewA: cb });
        const settled =
          conn &&
          sa.state === 'idle' &&
          sb.state === 'idle' &&
          sa.needTotalItems === 0 &&
          sb.needTotalItems === 0 &&
          ca.completion === 100 &&
          cb.completion === 100 &&
          ca.needItems + ca.needDeletes === 0 &&
          cb.needItems + cb.needDeletes === 0 &&
          ca.sequence === sb.sequence &&
          cb.sequence === sa.sequence &&
          sa.globalTotalItems === sb.globalTotalItems &&
          sa.globalBytes === sb.globalBytes &&
          sa.localTotalItems === sa.globalTotalItems &&
          sb.localTotalItems === sb.globalTotalItems;
        stable = settled ? stable + 1 : 0;
        sequences = `${sa.sequence}/${sb.sequence}`;
        if (process.env.SEALFS_SYNC_DEBUG) console.log(`${new Date().toISOString()} ${settled} ${last}`);
      } catch (err) {
        last = (err as Error).message;
        stable = 0;
      }
    }
    return sequences;
  }

  private async folderErrors(): Promise<string> {
    const parts: string[] = [];
    for (const node of [this.a, this.b]) {
      try {
        const e = await this.api<{ errors?: { path: string; error: string }[] | null }>(node, 'GET', `/rest/folder/errors?folder=${FOLDER_ID}`);
        parts.push(`${node.name}: ${JSON.stringify(e.errors ?? [])}`);
      } catch (err) {
        parts.push(`${node.name}: ${(err as Error).message}`);
      }
    }
    return parts.join('; ');
  }

  /** Stops both instances: REST shutdown, then SIGTERM/SIGKILL by pid. Never throws. */
  async stop(): Promise<void> {
    for (const node of [this.a, this.b]) {
      const child = node.process;
      if (!child?.pid || !alive(child.pid)) continue;
      await this.api(node, 'POST', '/rest/system/shutdown', undefined, 5000).catch(() => undefined);
      await waitFor(`Syncthing ${node.name} to exit`, () => !alive(child.pid!), 10_000).catch(() => undefined);
      await endProcess(child.pid, 5000);
    }
  }
}

function pick(s: FolderStatus) {
  return { state: s.state, need: s.needTotalItems, global: s.globalTotalItems, local: s.localTotalItems, bytes: s.globalBytes, seq: s.sequence, pullErrors: s.pullErrors };
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

/** `syncthing generate`, then config.xml edited so that nothing but 127.0.0.1 is ever used. */
async function generate(home: string, name: string, folderPath: string, guiPort: number, listenPort: number): Promise<SyncthingNode> {
  await mkdir(home, { recursive: true });
  const gen = await runDetached('syncthing', ['generate', '--home', home, '--no-default-folder', '--skip-port-probing'], process.env, 60_000);
  const id = /Device ID:\s*([A-Z0-9-]{63})/.exec(gen.stdout + gen.stderr)?.[1];
  if (gen.code !== 0 || !id) throw new Error(`syncthing generate failed (${gen.code}): ${gen.stdout}${gen.stderr}`);
  const apiKey = randomBytes(18).toString('base64url');
  let xml = await readFile(join(home, 'config.xml'), 'utf8');
  xml = setElement(xml, 'address', `127.0.0.1:${guiPort}`, 'gui');
  xml = setElement(xml, 'apikey', apiKey, 'gui');
  const options: Record<string, string> = {
    listenAddress: `tcp://127.0.0.1:${listenPort}`,
    globalAnnounceEnabled: 'false',
    localAnnounceEnabled: 'false',
    relaysEnabled: 'false',
    natEnabled: 'false',
    urAccepted: '-1',
    crashReportingEnabled: 'false',
    autoUpgradeIntervalH: '0',
    startBrowser: 'false',
    reconnectionIntervalS: '1',
    minHomeDiskFree: '0',
    setLowPriority: 'false',
    restartOnWakeup: 'false',
  };
  for (const [key, value] of Object.entries(options)) xml = setElement(xml, key, value, 'options');
  await writeFile(join(home, 'config.xml'), xml);
  return { name, home, folderPath, guiPort, listenPort, apiKey, deviceId: id, logFile: join(home, 'syncthing.log') };
}

function launch(node: SyncthingNode): void {
  const log = openSync(node.logFile, 'a');
  try {
    node.process = spawn('syncthing', ['serve', '--home', node.home, '--no-browser', '--no-restart', '--no-upgrade', '--logflags=3'], {
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        HOME: node.home,
        STNOUPGRADE: '1',
        STNORESTART: '1',
        STNODEFAULTFOLDER: '1',
        // One process instead of a monitor plus a child: the pid we hold is the instance itself,
        // so ending it by pid (even with SIGKILL) leaves nothing behind.
        STMONITORED: '1',
        // No proxy: only 127.0.0.1 is ever contacted.
        all_proxy: '',
        http_proxy: '',
        https_proxy: '',
        ALL_PROXY: '',
        HTTP_PROXY: '',
        HTTPS_PROXY: '',
      },
    });
  } finally {
    closeSync(log);
  }
  // If this test process dies anyway, do not leave the instance behind.
  const pid = node.process.pid;
  process.once('exit', () => {
    if (pid && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}
