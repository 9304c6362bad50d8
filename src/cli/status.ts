/**
 * `sealfs status [MOUNTPOINT] [--json]`: this user's sealfs mounts (or one), each with its
 * vault, server, state and what its server has counted. What is mounted comes from
 * /proc/self/mountinfo; the figures from the servers' status files (src/fs/status.ts).
 */
import { canonicalMountpoint, fuseOwner, isFuse, isSealfs, mountAt, readMounts } from '../fs/mountinfo.js';
import { mountReports, type MountReport } from '../fs/status.js';
import { isInside, shellQuote, statusDirs } from '../vault/paths.js';
import { CliError, CliExit, EXIT } from './exit.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';

/**
 * One mount in `--json` (README, "Seeing what is mounted"): a stable shape for scripts. The
 * figures are null when its server published none (another user's, or an older sealfs).
 */
interface MountStatusJson {
  readonly mountpoint: string;
  readonly vault: string;
  readonly state: MountReport['state'];
  /** The command that clears a dead or hung mount; null while it is alive. */
  readonly fix: string | null;
  readonly readOnly: boolean;
  readonly pid: number | null;
  readonly since: string | null;
  readonly backend: string | null;
  readonly openFiles: number | null;
  readonly problems: {
    readonly integrityFailures: number;
    readonly lastIntegrityFailure: string | null;
    readonly undecryptableNames: number;
    readonly conflictCopies: number;
  } | null;
  /** When the server last wrote its figures (they are rewritten within a second of a change). */
  readonly updated: string | null;
}

/** How a dead or hung mount is cleared, as a command to paste. */
function fixOf(report: MountReport): string | null {
  const mountpoint = shellQuote(report.entry.mountpoint);
  if (report.state === 'dead') return `fusermount3 -u ${mountpoint}`;
  // A hung server's connection must be aborted first, which `sealfs unmount` does.
  if (report.state === 'hung') return `sealfs unmount ${mountpoint}`;
  return null;
}

function statusJson(report: MountReport): MountStatusJson {
  const r = report.record;
  return {
    mountpoint: report.entry.mountpoint,
    // mountinfo's source has commas and spaces replaced (mount.ts optionValue); the server says it exactly.
    vault: r?.vault ?? report.entry.source.replace(/^sealfs:/, ''),
    state: report.state,
    fix: fixOf(report),
    readOnly: report.readOnly,
    pid: r?.pid ?? null,
    since: r?.since ?? null,
    backend: r?.backend ?? null,
    openFiles: r?.openFiles ?? null,
    problems: r
      ? {
          integrityFailures: r.problems.integrityFailures,
          lastIntegrityFailure: r.problems.lastIntegrityFailure,
          undecryptableNames: r.problems.undecryptableNames,
          conflictCopies: r.problems.conflictCopies,
        }
      : null,
    updated: r?.updated ?? null,
  };
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** A local time to the second, e.g. 2026-12-06 19:40:01. */
function localTime(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

function problemsText(p: NonNullable<MountStatusJson['problems']>): string {
  const parts: string[] = [];
  if (p.integrityFailures > 0) {
    const last = p.lastIntegrityFailure === null ? '' : ` (last: ${JSON.stringify(p.lastIntegrityFailure)})`;
    parts.push(`${plural(p.integrityFailures, 'integrity failure', 'integrity failures')}${last}`);
  }
  if (p.undecryptableNames > 0) parts.push(plural(p.undecryptableNames, 'undecryptable name', 'undecryptable names'));
  if (p.conflictCopies > 0) parts.push(plural(p.conflictCopies, 'conflict copy', 'conflict copies'));
  if (parts.length === 0) return 'none seen';
  return `${parts.join(', ')}; the server's log names them (\`sealfs scrub\` checks the whole vault)`;
}

const STATE_TEXT: Readonly<Record<MountReport['state'], string>> = {
  alive: 'mounted',
  dead: 'DEAD: its server ended, the mount cannot be used',
  hung: 'NOT ANSWERING: its server does not answer',
};

function statusText(s: MountStatusJson): string {
  const lines = [`${s.mountpoint}: ${STATE_TEXT[s.state]}`];
  if (s.fix !== null) lines.push(`  clear it:   ${s.fix}`);
  lines.push(`  vault:      ${s.vault}`);
  if (s.pid === null) {
    lines.push("  server:     no figures (another user's mount, an older sealfs, or other XDG folders)");
  } else {
    lines.push(`  server:     pid ${s.pid}, since ${localTime(s.since!)}, crypto backend ${s.backend}`);
    if (s.state !== 'alive') lines.push(`  (the figures below are the last its server published, at ${localTime(s.updated!)})`);
  }
  lines.push(`  access:     ${s.readOnly ? 'read-only' : 'read-write'}`);
  if (s.openFiles !== null) lines.push(`  open files: ${s.openFiles}`);
  if (s.problems !== null) lines.push(`  problems:   ${problemsText(s.problems)}`);
  return lines.join('\n') + '\n';
}

/** The sealfs mount at `path`, or a CliError saying what is there instead. */
async function findMount(path: string) {
  const mountpoint = await canonicalMountpoint(path);
  const entry = await mountAt(mountpoint);
  if (entry && isFuse(entry) && isSealfs(entry)) return entry;
  const hint = '`sealfs status` lists your sealfs mounts';
  if (entry) throw new CliError(`${mountpoint} is mounted as ${entry.fstype} (from ${entry.source}), not as sealfs; ${hint}`, EXIT.MOUNT);
  const around = (await readMounts()).filter((m) => isFuse(m) && isSealfs(m) && isInside(mountpoint, m.mountpoint)).pop();
  if (around) throw new CliError(`${mountpoint} is not a mount point; it lies inside the sealfs mount ${around.mountpoint}: sealfs status ${shellQuote(around.mountpoint)}`, EXIT.MOUNT);
  throw new CliError(`${mountpoint} is not a sealfs mount (nothing is mounted there); ${hint}`, EXIT.MOUNT);
}

async function statusCommand(path: string | undefined, opts: { json?: boolean }, io: CliIo): Promise<void> {
  const dirs = statusDirs(io.env);
  if (path !== undefined) {
    const entry = await findMount(path);
    const [report] = await mountReports(dirs, (m) => m.mountpoint === entry.mountpoint && m.device === entry.device);
    if (!report) throw new CliError(`${entry.mountpoint} was unmounted just now`, EXIT.MOUNT);
    const shown = statusJson(report);
    io.stdout.write(opts.json ? JSON.stringify(shown) + '\n' : statusText(shown));
    // A script asking about one mount learns from the code whether it can be used.
    if (report.state !== 'alive') throw new CliExit(EXIT.MOUNT);
    return;
  }
  const uid = process.getuid?.();
  const reports = await mountReports(dirs, (m) => uid === undefined || fuseOwner(m) === uid);
  const shown = reports.map(statusJson);
  if (opts.json) io.stdout.write(JSON.stringify({ mounts: shown }) + '\n');
  else io.stdout.write(shown.length === 0 ? 'No sealfs mounts of yours.\n' : shown.map(statusText).join('\n'));
}

/** Registers `sealfs status`. */
export function registerStatusCommand(program: SealfsCommand, io: CliIo): void {
  program
    .command('status')
    .summary('show your sealfs mounts and problems seen')
    .documented({ examples: ['sealfs status', 'sealfs status ~/Private --json'], exits: ['MOUNT'] })
    .description("list your sealfs mounts (vault, server, read-only, open files, problems seen), or one; a dead mount is shown with the command that clears it")
    .argument('[mountpoint]', 'show only this mount (exit code 7 when it is not a sealfs mount, or is dead)')
    .option('--json', 'print JSON: {"mounts": [...]}, or one mount object with MOUNTPOINT (see the README)')
    .action((mountpoint: string | undefined, opts: { json?: boolean }) => statusCommand(mountpoint, opts, io));
}
