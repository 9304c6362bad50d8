/**
 * `sealfs scrub`, `sealfs backup`, `sealfs restore`, `sealfs repair`: integrity checks and
 * a second, independent copy. This file parses and prints; the work is in
 * src/tools/{scrub,backup,rclone}.ts. Problem lists go to stdout, progress and summaries
 * to stderr; `--json` prints exactly one JSON object on stdout.
 */
import { realpath, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { resolveLoosely } from '../vault/keystore.js';
import { isInside, shellQuote, stateDir } from '../vault/paths.js';
import { unlockForMaintenance, unlockForRepair, unlockForRestore } from '../vault/unlock.js';
import { readVaultFile } from '../vault/vaultfile.js';
import {
  assertNoKeysInside,
  backupCipherDir,
  checkRestoreTarget,
  readBackupVaultFile,
  repairFromRemote,
  requireBackupVaultFile,
  restoreCipherDir,
  verifyRemote,
  type RepairOutcome,
  type TransferSummary,
} from '../tools/backup.js';
import type { RcloneStats } from '../tools/rclone.js';
import { countCipherTree, problemJson, scrubVault, type ScrubProblem, type ScrubResult } from '../tools/scrub.js';
import { formatBytes, ProgressBar } from '../tools/scrubprogress.js';
import { loadScrubState, saveScrubState } from '../tools/scrubstate.js';
import { backendOption } from './args.js';
import { holdVaultLock } from './inuse.js';
import { CliError, CliExit, EXIT } from './exit.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { addPassphraseOptions, keystoreOf, passphraseAsker, type VaultKeyOptions } from './passphrase.js';

interface KeyOptions extends VaultKeyOptions {
  backend?: string;
  json?: boolean;
}

/**
 * libuv's thread pool (default 4) carries both the reads and the native crypto; on a
 * machine with more cores, run the command again with a pool big enough to use them all.
 * libuv sizes the pool at first use, which Node's module loader has already made.
 */
function ensureThreadPool(io: CliIo): void {
  const want = Math.min(64, availableParallelism() + 2);
  const have = Number(io.env.UV_THREADPOOL_SIZE ?? 4);
  if (!(have < want)) return;
  const status = io.relaunchWithThreadPool?.(want);
  if (status !== undefined) throw new CliExit(status);
}

async function assertFolder(path: string): Promise<void> {
  const st = await stat(path);
  if (!st.isDirectory()) throw new CliError(`${path}: not a folder`, EXIT.IO);
}

/** How the maintenance commands unlock: rules and fallbacks are src/vault/unlock.ts's. */
function unlocking(cipherDir: string, opts: VaultKeyOptions, io: CliIo, label = cipherDir) {
  return { keystoreDir: keystoreOf(opts, io), passphrase: passphraseAsker(opts, `passphrase for ${label}`, io) };
}

// ---------------------------------------------------------------------------------------
// Printing

function printProblems(problems: readonly ScrubProblem[], io: CliIo): void {
  const lines = problems.map((p) => {
    const where = p.plainPath ?? '(plaintext name unknown)';
    const chunk = p.chunk !== null ? ` chunk ${p.chunk}` : '';
    return `${p.kind}${chunk}: ${where}\n    ${p.detail}\n    cipher path: ${p.cipherPath}\n`;
  });
  io.stdout.write(lines.join(''));
}

function printJson(value: unknown, io: CliIo): void {
  io.stdout.write(JSON.stringify(value) + '\n');
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-';
}

function scrubSummary(what: string, r: ScrubResult, seconds: number): string {
  const skipped = r.skipped ? `, ${r.skipped} unchanged files not re-read` : '';
  const busy = r.busy ? `, ${r.busy} files skipped because they kept changing while read` : '';
  const found = r.problems.length ? `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}` : 'no problems';
  return `${what}: ${r.files} files (${formatBytes(r.bytes)}) verified in ${seconds.toFixed(1)} s (${rate(r.bytes, seconds)})${skipped}${busy}: ${found}\n`;
}

function scrubJson(r: ScrubResult) {
  return { files: r.files, bytes: r.bytes, skipped: r.skipped, problems: r.problems.map(problemJson) };
}

function transferSummary(verb: string, s: TransferSummary, where: string): string {
  const deleted = s.deletes ? `, ${s.deletes} deleted` : '';
  return `${verb} ${s.files} files (${formatBytes(s.bytes)}) ${where}, ${s.checks} already up to date${deleted}, in ${s.seconds.toFixed(1)} s\n`;
}

function rcloneProgress(bar: ProgressBar) {
  return (s: RcloneStats) =>
    bar.update({ files: s.transfers, totalFiles: s.totalTransfers, bytes: s.bytes, totalBytes: s.totalBytes, rate: s.speed }, true);
}

/** Runs a scrub with a progress bar on a terminal (totals counted alongside). */
async function scrubWithProgress(
  label: string,
  cipherDir: string,
  io: CliIo,
  run: (onProgress: (p: { files: number; bytes: number }) => void) => Promise<ScrubResult>,
  skip?: ReadonlySet<string>,
) {
  const bar = new ProgressBar(label, io.stderr);
  if (bar.enabled) {
    // Counted first (names and sizes only, far cheaper than decrypting), so that the bar has
    // its percentage and ETA from the start rather than once a parallel count caught up.
    bar.status('counting files…');
    const total = await countCipherTree(cipherDir, skip).catch(() => undefined);
    if (total) bar.update({ totalFiles: total.files, totalBytes: total.bytes });
    bar.restart();
  }
  const started = performance.now();
  try {
    const result = await run((p) => bar.update(p));
    return { result, seconds: (performance.now() - started) / 1000 };
  } finally {
    bar.done();
  }
}

function problemsFound(n: number, where: string): CliError {
  return new CliError(`${where} found ${n} problem${n === 1 ? '' : 's'}`, EXIT.PROBLEMS);
}

// ---------------------------------------------------------------------------------------
// Commands

interface ScrubCliOptions extends KeyOptions {
  changed?: boolean;
}

async function scrubCommand(dir: string, opts: ScrubCliOptions, io: CliIo): Promise<void> {
  ensureThreadPool(io);
  const note = (text: string) => void io.stderr.write(text);
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  const { keystoreDir, passphrase } = unlocking(cipherDir, opts, io);
  const { masterKey, vaultId } = await unlockForMaintenance(cipherDir, keystoreDir, passphrase);
  const state = stateDir(io.env);
  const canKeepState = !isInside(await resolveLoosely(state), await realpath(cipherDir));
  if (!canKeepState) note(`sealfs: warning: the state folder ${state} is inside the cipher directory; --changed state is not kept\n`);
  const skip = opts.changed && canKeepState ? await loadScrubState(vaultId, state) : undefined;
  const { result, seconds } = await scrubWithProgress(
    'scrub',
    cipherDir,
    io,
    (onProgress) => scrubVault({ cipherDir, masterKey, backend: opts.backend, skipUnchanged: skip, onProgress }),
    skip,
  );
  masterKey.fill(0);
  if (canKeepState) await saveScrubState(vaultId, result.clean, state);
  if (opts.json) printJson(scrubJson(result), io);
  else printProblems(result.problems, io);
  if (!opts.json && (io.stderr.isTTY || result.problems.length)) note(scrubSummary('scrub', result, seconds));
  if (result.problems.length) throw problemsFound(result.problems.length, 'scrub');
}

interface BackupCliOptions extends KeyOptions {
  quiet?: boolean;
  mirror?: boolean;
  verify?: boolean;
  rcloneConfig?: string;
}

/** A local path as a remote must not overlap the cipher directory. */
async function assertRemoteOutside(cipherDir: string, remote: string): Promise<void> {
  const local = remote.startsWith('/') || remote.startsWith('.') || !remote.includes(':');
  if (!local) return;
  const a = await resolveLoosely(remote);
  const b = await realpath(cipherDir);
  if (isInside(a, b) || isInside(b, a)) throw new CliError(`the backup location ${remote} overlaps the cipher directory ${cipherDir}`, EXIT.USAGE);
}

async function backupCommand(dir: string, remote: string, opts: BackupCliOptions, io: CliIo): Promise<void> {
  if (opts.verify) ensureThreadPool(io);
  const note = (text: string) => void io.stderr.write(text);
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  await readVaultFile(cipherDir); // a vault at all (exit 6 otherwise)
  await assertRemoteOutside(cipherDir, remote);
  const { keystoreDir, passphrase } = unlocking(cipherDir, opts, io);
  await assertNoKeysInside(cipherDir, [keystoreDir]);
  // Ask for the passphrase before anything is sent, so a wrong one fails at once.
  const masterKey = opts.verify ? (await unlockForMaintenance(cipherDir, keystoreDir, passphrase)).masterKey : undefined;
  const bar = new ProgressBar('backup', io.stderr);
  let summary: TransferSummary;
  try {
    summary = await backupCipherDir({ cipherDir, remote, mirror: opts.mirror, config: opts.rcloneConfig, env: io.env, liveStats: bar.enabled, onStats: rcloneProgress(bar) });
  } finally {
    bar.done();
  }
  const talk = !opts.json && !opts.quiet;
  if (talk) note(transferSummary('backup: copied', summary, `to ${remote}`));
  let verified: (ScrubResult & { downloaded: TransferSummary }) | undefined;
  let seconds = 0;
  if (masterKey) {
    if (talk) note(`backup: downloading ${remote} into a temporary folder to verify it with the key…\n`);
    const download = new ProgressBar('download', io.stderr);
    let check: ProgressBar | undefined;
    let started = 0;
    try {
      verified = await verifyRemote({
        remote,
        masterKey,
        backend: opts.backend,
        config: opts.rcloneConfig,
        env: io.env,
        liveStats: download.enabled,
        onStats: rcloneProgress(download),
        onScrubStart: (_downloaded, dir) => {
          download.done();
          started = performance.now();
          const bar = (check = new ProgressBar('verify', io.stderr));
          if (bar.enabled) void countCipherTree(dir).then((t) => bar.update({ totalFiles: t.files, totalBytes: t.bytes }), () => undefined);
        },
        onProgress: (p) => check?.update(p),
      });
    } finally {
      download.done();
      check?.done();
    }
    seconds = (performance.now() - started) / 1000;
    masterKey.fill(0);
  }
  if (opts.json) {
    printJson({ ...summary, remote, mirror: opts.mirror === true, verify: verified ? scrubJson(verified) : null }, io);
  } else if (verified) {
    printProblems(verified.problems, io);
    if (talk || verified.problems.length) note(scrubSummary(`verify ${remote}`, verified, seconds));
  }
  if (verified?.problems.length) throw problemsFound(verified.problems.length, `verifying ${remote}`);
}

interface TransferCliOptions extends KeyOptions {
  rcloneConfig?: string;
}

async function restoreCommand(remote: string, dir: string, opts: TransferCliOptions, io: CliIo): Promise<void> {
  ensureThreadPool(io);
  const cipherDir = resolve(dir);
  await checkRestoreTarget(cipherDir);
  const rclone = { config: opts.rcloneConfig, env: io.env };
  // Read the backup's vault file first: it names the key, which is unlocked before the download.
  const stored = await requireBackupVaultFile(remote, rclone);
  const { keystoreDir, passphrase } = unlocking(cipherDir, opts, io, `vault ${stored.config.vaultId}`);
  const { vaultId, masterKey } = await unlockForRestore(stored, remote, keystoreDir, passphrase);
  const bar = new ProgressBar('restore', io.stderr);
  let summary: TransferSummary;
  try {
    summary = await restoreCipherDir(remote, cipherDir, { ...rclone, liveStats: bar.enabled, onStats: rcloneProgress(bar) });
  } finally {
    bar.done();
  }
  if (!opts.json) io.stderr.write(transferSummary('restore: copied', summary, `from ${remote} into ${cipherDir}`));
  if (!masterKey) {
    throw new CliError(
      `restored, but not verified: the key store has no key for vault ${vaultId}. Run \`sealfs key import ${shellQuote(cipherDir)}\` (with the recovery key), then \`sealfs scrub ${shellQuote(cipherDir)}\``,
      EXIT.KEY,
    );
  }
  const { result, seconds } = await scrubWithProgress('verify', cipherDir, io, (onProgress) => scrubVault({ cipherDir, masterKey, backend: opts.backend, onProgress }));
  masterKey.fill(0);
  if (opts.json) printJson({ ...summary, verify: scrubJson(result) }, io);
  else {
    printProblems(result.problems, io);
    io.stderr.write(scrubSummary('verify', result, seconds));
  }
  if (result.problems.length) throw problemsFound(result.problems.length, 'verifying the restored vault');
}

interface RepairCliOptions extends TransferCliOptions {
  from: string;
}

function outcomeJson(o: RepairOutcome) {
  return { ...problemJson(o.problem), repaired: o.repaired, action: o.detail, keptAt: o.keptAt ?? null };
}

/**
 * A repair writes into the cipher folder: never under a mount of the vault, whose server
 * would go on from what it holds in memory. It holds the vault lock (src/cli/inuse.ts), which
 * a mount holds too, for as long as it runs.
 */
async function repairCommand(dir: string, opts: RepairCliOptions, io: CliIo): Promise<void> {
  ensureThreadPool(io);
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  const release = await holdVaultLock(cipherDir, (line) => void io.stderr.write(`warning: ${line}\n`));
  try {
    await repairLocked(cipherDir, opts, io);
  } finally {
    release();
  }
}

async function repairLocked(cipherDir: string, opts: RepairCliOptions, io: CliIo): Promise<void> {
  const note = (text: string) => void io.stderr.write(text);
  const remote = opts.from;
  const rclone = { config: opts.rcloneConfig, env: io.env };
  const { keystoreDir, passphrase } = unlocking(cipherDir, opts, io);
  const { masterKey, vaultId } = await unlockForRepair(cipherDir, keystoreDir, passphrase, {
    where: remote,
    vaultFile: () => readBackupVaultFile(remote, rclone),
  });
  const { result: before } = await scrubWithProgress('scrub', cipherDir, io, (onProgress) => scrubVault({ cipherDir, masterKey, backend: opts.backend, onProgress }));
  if (before.problems.length === 0) {
    masterKey.fill(0);
    if (opts.json) printJson({ repaired: [], notRepaired: [], problems: [] }, io);
    else note('repair: scrub found no problems; nothing to repair\n');
    return;
  }
  if (!opts.json) note(`repair: scrub found ${before.problems.length} problem${before.problems.length === 1 ? '' : 's'}; fetching copies from ${remote}…\n`);
  const report = await repairFromRemote({ cipherDir, remote, masterKey, vaultId, backend: opts.backend, ...rclone, before });
  masterKey.fill(0);
  const repaired = report.outcomes.filter((o) => o.repaired);
  const failed = report.outcomes.filter((o) => !o.repaired);
  if (opts.json) {
    printJson(
      { repaired: repaired.map(outcomeJson), notRepaired: failed.map(outcomeJson), problems: report.after.problems.map(problemJson), quarantine: report.quarantine ?? null },
      io,
    );
  } else {
    const line = (o: RepairOutcome) =>
      `${o.repaired ? 'repaired' : 'NOT repaired'}: ${o.problem.kind}: ${o.problem.plainPath ?? o.problem.cipherPath}\n    ${o.detail}${o.keptAt ? `; the damaged version is kept at ${o.keptAt}` : ''}\n`;
    io.stdout.write(report.outcomes.map(line).join(''));
    if (report.after.problems.length) {
      io.stdout.write('Problems remaining after the repair:\n');
      printProblems(report.after.problems, io);
    }
    note(`repair: ${repaired.length} repaired, ${failed.length} not repaired; ${report.after.problems.length} problems remain\n`);
  }
  if (failed.length || report.after.problems.length) {
    throw new CliError(`repair left ${Math.max(failed.length, report.after.problems.length)} problem(s) unrepaired`, EXIT.PROBLEMS);
  }
}

export function registerMaintenanceCommands(program: SealfsCommand, io: CliIo): void {
  addPassphraseOptions(
    program
      .command('scrub')
      .summary('verify every file of a vault')
      .documented({ examples: ['sealfs scrub --changed ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'PROBLEMS', 'INTERRUPTED'] })
      .description('verify every chunk, header, name, symlink target and control file of a vault (read-only; safe while mounted)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .option('--json', 'print one JSON object {files, bytes, skipped, problems: [{kind, cipherPath, plainPath, chunk, detail}]}')
      .option('--changed', 'verify only files whose size or times changed since they last verified clean (state kept outside the vault)')
      .addOption(backendOption()),
  ).action((cipherDir: string, opts: ScrubCliOptions) => scrubCommand(cipherDir, opts, io));

  addPassphraseOptions(
    program
      .command('backup')
      .summary('copy the ciphertext elsewhere with rclone')
      .documented({
        examples: ['sealfs backup --verify ~/Dropbox/vault /media/usb/vault-backup', 'sealfs backup -q ~/Dropbox/vault sftp:backup/vault'],
        exits: ['IO', 'KEY', 'VAULT', 'UNSAFE', 'PROBLEMS', 'REMOTE', 'INTERRUPTED'],
      })
      .description('copy the cipher directory (ciphertext only) to REMOTE through rclone; never deletes remote files unless --mirror')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .argument('<remote>', 'any rclone destination: a local path, remote:path (sftp, s3, webdav, …)')
      .option('--mirror', 'also delete remote files that no longer exist locally (rclone sync)')
      .option('--verify', 'then download the remote copy and verify it with the key, like scrub (asks for the passphrase first)')
      .option('--rclone-config <file>', 'rclone configuration file (default: your own rclone configuration)')
      .option('-q, --quiet', 'no summary when all went well (for cron and timers); errors and problems are still printed')
      .option('--json', 'print one JSON object {files, bytes, checks, deletes, seconds, remote, mirror, verify}')
      .addOption(backendOption()),
  ).action((cipherDir: string, remote: string, opts: BackupCliOptions) => backupCommand(cipherDir, remote, opts, io));

  addPassphraseOptions(
    program
      .command('restore')
      .summary('rebuild a vault from a backup')
      .documented({ examples: ['sealfs restore /media/usb/vault-backup ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'PROBLEMS', 'REMOTE', 'INTERRUPTED'] })
      .description('rebuild a whole vault from a backup into CIPHERDIR (new or empty), then verify it')
      .argument('<remote>', 'the backup (rclone path)')
      .argument('<cipherdir>', 'where to rebuild the vault: a new or empty folder')
      .option('--rclone-config <file>', 'rclone configuration file')
      .option('--json', 'print one JSON object {files, bytes, …, verify: {files, bytes, skipped, problems}}')
      .addOption(backendOption()),
  ).action((remote: string, cipherDir: string, opts: TransferCliOptions) => restoreCommand(remote, cipherDir, opts, io));

  addPassphraseOptions(
    program
      .command('repair')
      .summary('replace damaged files by their backup copies')
      .documented({ examples: ['sealfs repair ~/Dropbox/vault --from /media/usb/vault-backup'], exits: ['IO', 'KEY', 'VAULT', 'PROBLEMS', 'REMOTE', 'IN_USE', 'INTERRUPTED'] })
      .description('scrub, then replace every damaged file and control file by its backup copy if that copy verifies (damaged versions are kept aside)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .requiredOption('--from <remote>', 'the backup to repair from (rclone path)')
      .option('--rclone-config <file>', 'rclone configuration file')
      .option('--json', 'print one JSON object {repaired, notRepaired, problems, quarantine}')
      .addOption(backendOption()),
  ).action((cipherDir: string, opts: RepairCliOptions) => repairCommand(cipherDir, opts, io));
}
