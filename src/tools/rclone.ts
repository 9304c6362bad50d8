/**
 * rclone, run as a child process (the Debian package; no wrapper library). Its JSON log is
 * parsed for live statistics and errors; any failure becomes one readable line, a
 * ToolError('remote'). sealfs always passes --links, so symbolic links (which carry encrypted
 * targets) travel as `<name>.rclonelink` files on remotes that have no links, and come back
 * as links.
 */
import { spawn } from 'node:child_process';
import { ToolError } from './errors.js';

/** Found on PATH. */
export const RCLONE_COMMAND = 'rclone';

/** rclone's accounting figures (from its JSON stats lines). */
export interface RcloneStats {
  bytes: number;
  totalBytes: number;
  transfers: number;
  totalTransfers: number;
  checks: number;
  deletes: number;
  errors: number;
  elapsedTime: number;
  speed: number;
  eta: number | null;
  lastError?: string;
}

export interface RcloneRun {
  /** The last statistics rclone printed (its final summary), if any. */
  stats?: RcloneStats;
  stdout: string;
}

export interface RcloneOptions {
  /** `--config FILE` (default: the user's own rclone configuration). */
  readonly config?: string;
  /** Called for every statistics line; with `liveStats`, once a second. */
  readonly onStats?: (stats: RcloneStats) => void;
  readonly liveStats?: boolean;
  /** rclone's environment (PATH, RCLONE_* settings); default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Thrown for any rclone failure: rclone missing, bad remote, transfer errors. */
function rcloneError(message: string): ToolError {
  return new ToolError('remote', message);
}

/** REMOTE joined with a '/'-separated path inside it ("remote:" + "a/b" → "remote:a/b"). */
export function remoteJoin(remote: string, rel: string): string {
  if (!rel) return remote;
  if (remote.endsWith(':') || remote.endsWith('/')) return remote + rel;
  return `${remote}/${rel}`;
}

const PLAIN_LOG = /^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2} (?:[A-Z]+\s*: )?/;

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 400 ? `${line.slice(0, 397)}...` : line;
}

/** Runs `rclone ARGS…` with sealfs's fixed flags; resolves on exit status 0. */
export function runRclone(args: readonly string[], options: RcloneOptions = {}): Promise<RcloneRun> {
  const full = [
    ...args,
    '--use-json-log',
    '--log-level',
    'NOTICE',
    '--stats-log-level',
    'NOTICE',
    ...(options.liveStats ? ['--stats', '1s'] : []),
    ...(options.config !== undefined ? ['--config', options.config] : []),
  ];
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(RCLONE_COMMAND, full, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    } catch (err) {
      reject(missing(err));
      return;
    }
    let stdout = '';
    let pending = '';
    let stats: RcloneStats | undefined;
    const errors: string[] = [];
    let fatal: string | undefined;
    const onLine = (line: string) => {
      if (!line.trim()) return;
      if (line.startsWith('{')) {
        try {
          const entry = JSON.parse(line) as { level?: string; msg?: string; object?: string; stats?: RcloneStats };
          if (entry.stats) {
            stats = entry.stats;
            options.onStats?.(entry.stats);
          } else if (entry.level === 'error' || entry.level === 'critical' || entry.level === 'alert' || entry.level === 'emergency') {
            errors.push(oneLine(entry.object ? `${entry.object}: ${entry.msg ?? ''}` : (entry.msg ?? '')));
          }
          return;
        } catch {
          // not JSON after all: treat as plain text
        }
      }
      const text = line.replace(PLAIN_LOG, '');
      if (/^(Failed|Fatal error|Error|ERROR|CRITICAL)\b/i.test(text) || /^(Usage|Command \w+ needs)/.test(text)) fatal = oneLine(text);
      else if (!/^NOTICE|^INFO|^DEBUG/.test(text) && !fatal && /error|failed|not found|unknown/i.test(text)) fatal = oneLine(text);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      lines.forEach(onLine);
    });
    child.on('error', (err) => reject(missing(err)));
    child.on('close', (code, signal) => {
      onLine(pending);
      if (code === 0) {
        resolve({ ...(stats ? { stats } : {}), stdout });
        return;
      }
      const first = fatal ?? errors[errors.length - 1] ?? stats?.lastError ?? (signal ? `rclone was killed by ${signal}` : `rclone exited with status ${code}`);
      const more = errors.length > 1 ? ` (${errors.length} errors in all)` : '';
      reject(rcloneError(`rclone ${args[0] ?? ''} failed: ${first}${more}`));
    });
  });
}

function missing(err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') {
    return rcloneError(`rclone is not installed or not on PATH ("${RCLONE_COMMAND}" not found); install it (Debian/Ubuntu: apt install rclone) and try again`);
  }
  return rcloneError(`cannot run rclone: ${e.message}`);
}
