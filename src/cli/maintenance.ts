/**
 * `sealfs scrub`, `sealfs backup`, `sealfs restore`, `sealfs repair`: integrity checks and
 * a second, independent copy. This file parses and prints; the work is in
 * src/tools/{scrub,backup,rclone}.ts. Problem lists go to stdout, progress and summaries
 * to stderr; `--json` prints exactly one JSON object on stdout.
 */
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { open, readdir, realpath, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { VaultError } from '../vault/errors.js';
import { defaultKeystoreDir, KEYSTORE_FORMAT, resolveLoosely, unlockMasterKey } from '../vault/keystore.js';
import { readVaultFile, verifyVaultFile } from '../vault/vaultfile.js';
import {
  assertNoKeysInside,
  backupCipherDir,
  checkRestoreTarget,
  fetchFromRemote,
  isInside,
  repairFromRemote,
  restoreCipherDir,
  tempFolder,
  verifyRemote,
  type RepairOutcome,
  type TransferSummary,
} from '../tools/backup.js';
import type { RcloneStats } from '../tools/rclone.js';
import { countCipherTree, problemJson, scrubVault, type ScrubProblem, type ScrubResult } from '../tools/scrub.js';
import { formatBytes, ProgressBar } from '../tools/scrubprogress.js';
import { loadScrubState, saveScrubState, stateDir } from '../tools/scrubstate.js';
import { backendOption } from './args.js';
import { CliError, EXIT } from './exit.js';
import { addPassphraseOptions, obtainPassphrase, tellTerminal, type VaultKeyOptions } from './passphrase.js';

interface KeyOptions extends VaultKeyOptions {
  backend?: string;
  json?: boolean;
}

const note = (text: string) => void process.stderr.write(text);

/**
 * libuv's thread pool (default 4) carries both the reads and the native crypto; on a
 * machine with more cores, run the command again with a pool big enough to use them all.
 * libuv sizes the pool at first use, which Node's module loader has already made.
 */
function ensureThreadPool(): void {
  const want = Math.min(64, availableParallelism() + 2);
  const have = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  // Only when this process is the sealfs command itself (not a test or a library caller).
  if (!(have < want) || !isTheCommand()) return;
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(want) },
  });
  process.exit(child.status ?? 130);
}

/** Whether this process runs dist/src/cli/main.js (also through the npm bin symlink). */
function isTheCommand(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(new URL('./main.js', import.meta.url)));
  } catch {
    return false;
  }
}

async function assertFolder(path: string): Promise<void> {
  const st = await stat(path);
  if (!st.isDirectory()) throw new CliError(`${path}: not a folder`, EXIT.IO);
}

// ---------------------------------------------------------------------------------------
// Unlocking, also when the vault file is lost or damaged

const MAX_KEY_FILE_BYTES = 64 * 1024;

/** Vault ids of key store entries that were stored for this cipher directory (their informational cipherDir field). */
async function keysStoredFor(cipherDir: string, keystoreDir: string): Promise<string[]> {
  const real = await realpath(cipherDir).catch(() => resolve(cipherDir));
  const ids: string[] = [];
  const names = await readdir(keystoreDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.key'))) {
    try {
      const handle = await open(join(keystoreDir, name), 'r');
      try {
        const buf = Buffer.alloc(MAX_KEY_FILE_BYTES);
        const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
        const file = JSON.parse(buf.subarray(0, bytesRead).toString('utf8')) as { format?: string; vaultId?: string; cipherDir?: string };
        if (file.format === KEYSTORE_FORMAT && file.cipherDir === real && typeof file.vaultId === 'string') ids.push(file.vaultId);
      } finally {
        await handle.close();
      }
    } catch {
      // not a key store file we can read: skip
    }
  }
  return ids;
}

/** The master key of vault `vaultId`; at a prompt, a wrong passphrase may be retyped (3 attempts). */
async function unlockById(vaultId: string, label: string, opts: VaultKeyOptions): Promise<Uint8Array> {
  const keystoreDir = opts.keystore ?? defaultKeystoreDir();
  const interactive = opts.passphraseFile === undefined && opts.extpass === undefined;
  let passphrase: string | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await unlockMasterKey({
        keystoreDir,
        vaultId,
        passphrase: async () => (passphrase ??= await obtainPassphrase({ ...opts, purpose: `passphrase for ${label}` })),
      });
    } catch (err) {
      if (interactive && attempt < 3 && err instanceof VaultError && err.kind === 'wrong-passphrase') {
        tellTerminal('Wrong passphrase, try again.\n');
        passphrase = undefined;
        continue;
      }
      throw err;
    }
  }
}

/**
 * Unlocks the vault at `cipherDir` for maintenance: through its vault file when that can be
 * read, else (lost, damaged or edited) through the key store entry stored for this folder,
 * so that scrub can still report everything and repair can restore it.
 */
async function unlockForMaintenance(cipherDir: string, opts: VaultKeyOptions): Promise<{ masterKey: Uint8Array; vaultId: string }> {
  const keystoreDir = opts.keystore ?? defaultKeystoreDir();
  let vaultId: string | undefined;
  let trouble: VaultError | undefined;
  try {
    vaultId = (await readVaultFile(cipherDir)).config.vaultId;
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    trouble = err;
  }
  if (vaultId !== undefined) {
    try {
      return { masterKey: await unlockById(vaultId, cipherDir, opts), vaultId };
    } catch (err) {
      if (!(err instanceof VaultError && err.kind === 'no-key')) throw err;
      trouble = err;
    }
  }
  for (const id of await keysStoredFor(cipherDir, keystoreDir)) {
    if (id === vaultId) continue;
    return { masterKey: await unlockById(id, cipherDir, opts), vaultId: id };
  }
  const hint = trouble!.kind === 'no-key' ? '' : `; if its vault file was lost or damaged, repair it from a backup: sealfs repair ${cipherDir} --from REMOTE`;
  throw new VaultError(trouble!.kind, trouble!.message + hint);
}

// ---------------------------------------------------------------------------------------
// Printing

function printProblems(problems: readonly ScrubProblem[]): void {
  const lines = problems.map((p) => {
    const where = p.plainPath ?? '(plaintext name unknown)';
    const chunk = p.chunk !== null ? ` chunk ${p.chunk}` : '';
    return `${p.kind}${chunk}: ${where}\n    ${p.detail}\n    cipher path: ${p.cipherPath}\n`;
  });
  process.stdout.write(lines.join(''));
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
async function scrubWithProgress(label: string, cipherDir: string, run: (onProgress: (p: { files: number; bytes: number }) => void) => Promise<ScrubResult>, skip?: ReadonlySet<string>) {
  const bar = new ProgressBar(label);
  if (bar.enabled) {
    void countCipherTree(cipherDir, skip).then(
      (t) => bar.update({ totalFiles: t.files, totalBytes: t.bytes }),
      () => undefined,
    );
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

async function scrubCommand(dir: string, opts: ScrubCliOptions): Promise<void> {
  ensureThreadPool();
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  const { masterKey, vaultId } = await unlockForMaintenance(cipherDir, opts);
  const canKeepState = !isInside(await resolveLoosely(stateDir()), await realpath(cipherDir));
  if (!canKeepState) note(`sealfs: warning: the state folder ${stateDir()} is inside the cipher directory; --changed state is not kept\n`);
  const skip = opts.changed && canKeepState ? await loadScrubState(vaultId) : undefined;
  const { result, seconds } = await scrubWithProgress('scrub', cipherDir, (onProgress) =>
    scrubVault({ cipherDir, masterKey, backend: opts.backend, skipUnchanged: skip, onProgress }),
    skip,
  );
  masterKey.fill(0);
  if (canKeepState) await saveScrubState(vaultId, result.clean);
  if (opts.json) process.stdout.write(JSON.stringify(scrubJson(result)) + '\n');
  else printProblems(result.problems);
  if (!opts.json && (process.stderr.isTTY || result.problems.length)) note(scrubSummary('scrub', result, seconds));
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

async function backupCommand(dir: string, remote: string, opts: BackupCliOptions): Promise<void> {
  if (opts.verify) ensureThreadPool();
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  await readVaultFile(cipherDir); // a vault at all (exit 6 otherwise)
  await assertRemoteOutside(cipherDir, remote);
  await assertNoKeysInside(cipherDir, [opts.keystore ?? defaultKeystoreDir()]);
  // Ask for the passphrase before anything is sent, so a wrong one fails at once.
  const masterKey = opts.verify ? (await unlockForMaintenance(cipherDir, opts)).masterKey : undefined;
  const bar = new ProgressBar('backup');
  let summary: TransferSummary;
  try {
    summary = await backupCipherDir({ cipherDir, remote, mirror: opts.mirror, config: opts.rcloneConfig, liveStats: bar.enabled, onStats: rcloneProgress(bar) });
  } finally {
    bar.done();
  }
  const talk = !opts.json && !opts.quiet;
  if (talk) note(transferSummary('backup: copied', summary, `to ${remote}`));
  let verified: (ScrubResult & { downloaded: TransferSummary }) | undefined;
  let seconds = 0;
  if (masterKey) {
    if (talk) note(`backup: downloading ${remote} into a temporary folder to verify it with the key…\n`);
    const download = new ProgressBar('download');
    let check: ProgressBar | undefined;
    let started = 0;
    try {
      verified = await verifyRemote({
        remote,
        masterKey,
        backend: opts.backend,
        config: opts.rcloneConfig,
        liveStats: download.enabled,
        onStats: rcloneProgress(download),
        onScrubStart: (_downloaded, dir) => {
          download.done();
          started = performance.now();
          const bar = (check = new ProgressBar('verify'));
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
    process.stdout.write(JSON.stringify({ ...summary, remote, mirror: opts.mirror === true, verify: verified ? scrubJson(verified) : null }) + '\n');
  } else if (verified) {
    printProblems(verified.problems);
    if (talk || verified.problems.length) note(scrubSummary(`verify ${remote}`, verified, seconds));
  }
  if (verified?.problems.length) throw problemsFound(verified.problems.length, `verifying ${remote}`);
}

interface TransferCliOptions extends KeyOptions {
  rcloneConfig?: string;
}

async function restoreCommand(remote: string, dir: string, opts: TransferCliOptions): Promise<void> {
  ensureThreadPool();
  const cipherDir = resolve(dir);
  await checkRestoreTarget(cipherDir);
  // Read the backup's vault file first: it names the key, which is unlocked before the download.
  const work = await tempFolder('sealfs-restore-');
  let masterKey: Uint8Array | undefined;
  let vaultId: string;
  try {
    const { dir, arrived } = await fetchFromRemote(remote, ['sealfs.vault'], work, { config: opts.rcloneConfig });
    if (!arrived.size) throw new CliError(`${remote} holds no sealfs vault (no sealfs.vault); nothing was restored`, EXIT.VAULT);
    const stored = await readVaultFile(dir);
    vaultId = stored.config.vaultId;
    try {
      masterKey = await unlockById(vaultId, `vault ${vaultId}`, opts);
      verifyVaultFile(stored, masterKey, remote);
    } catch (err) {
      if (!(err instanceof VaultError && (err.kind === 'no-key' || err.kind === 'vault-tampered'))) throw err;
      if (err.kind === 'no-key') masterKey = undefined;
      // a backup vault file that does not verify is reported by the scrub below
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const bar = new ProgressBar('restore');
  let summary: TransferSummary;
  try {
    summary = await restoreCipherDir(remote, cipherDir, { config: opts.rcloneConfig, liveStats: bar.enabled, onStats: rcloneProgress(bar) });
  } finally {
    bar.done();
  }
  if (!opts.json) note(transferSummary('restore: copied', summary, `from ${remote} into ${cipherDir}`));
  if (!masterKey) {
    throw new CliError(
      `restored, but not verified: the key store has no key for vault ${vaultId}. Run \`sealfs key import ${cipherDir}\` (with the recovery key), then \`sealfs scrub ${cipherDir}\``,
      EXIT.KEY,
    );
  }
  const key = masterKey;
  const { result, seconds } = await scrubWithProgress('verify', cipherDir, (onProgress) => scrubVault({ cipherDir, masterKey: key, backend: opts.backend, onProgress }));
  key.fill(0);
  if (opts.json) process.stdout.write(JSON.stringify({ ...summary, verify: scrubJson(result) }) + '\n');
  else {
    printProblems(result.problems);
    note(scrubSummary('verify', result, seconds));
  }
  if (result.problems.length) throw problemsFound(result.problems.length, 'verifying the restored vault');
}

interface RepairCliOptions extends TransferCliOptions {
  from: string;
}

function outcomeJson(o: RepairOutcome) {
  return { ...problemJson(o.problem), repaired: o.repaired, action: o.detail, keptAt: o.keptAt ?? null };
}

async function repairCommand(dir: string, opts: RepairCliOptions): Promise<void> {
  ensureThreadPool();
  const cipherDir = resolve(dir);
  await assertFolder(cipherDir);
  const remote = opts.from;
  let unlocked: { masterKey: Uint8Array; vaultId: string };
  try {
    unlocked = await unlockForMaintenance(cipherDir, opts);
  } catch (err) {
    if (!(err instanceof VaultError && (err.kind === 'not-a-vault' || err.kind === 'vault-tampered' || err.kind === 'no-key'))) throw err;
    // The local vault file is lost or damaged: the backup's names the vault.
    const work = await tempFolder('sealfs-repair-');
    try {
      const { dir, arrived } = await fetchFromRemote(remote, ['sealfs.vault'], work, { config: opts.rcloneConfig });
      if (!arrived.size) throw err;
      const stored = await readVaultFile(dir);
      const masterKey = await unlockById(stored.config.vaultId, cipherDir, opts);
      verifyVaultFile(stored, masterKey, remote);
      unlocked = { masterKey, vaultId: stored.config.vaultId };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const { masterKey, vaultId } = unlocked;
  const { result: before } = await scrubWithProgress('scrub', cipherDir, (onProgress) => scrubVault({ cipherDir, masterKey, backend: opts.backend, onProgress }));
  if (before.problems.length === 0) {
    masterKey.fill(0);
    if (opts.json) process.stdout.write(JSON.stringify({ repaired: [], notRepaired: [], problems: [] }) + '\n');
    else note('repair: scrub found no problems; nothing to repair\n');
    return;
  }
  if (!opts.json) note(`repair: scrub found ${before.problems.length} problem${before.problems.length === 1 ? '' : 's'}; fetching copies from ${remote}…\n`);
  const report = await repairFromRemote({ cipherDir, remote, masterKey, vaultId, backend: opts.backend, config: opts.rcloneConfig, before });
  masterKey.fill(0);
  const repaired = report.outcomes.filter((o) => o.repaired);
  const failed = report.outcomes.filter((o) => !o.repaired);
  if (opts.json) {
    process.stdout.write(
      JSON.stringify({ repaired: repaired.map(outcomeJson), notRepaired: failed.map(outcomeJson), problems: report.after.problems.map(problemJson), quarantine: report.quarantine ?? null }) + '\n',
    );
  } else {
    const line = (o: RepairOutcome) =>
      `${o.repaired ? 'repaired' : 'NOT repaired'}: ${o.problem.kind}: ${o.problem.plainPath ?? o.problem.cipherPath}\n    ${o.detail}${o.keptAt ? `; the damaged version is kept at ${o.keptAt}` : ''}\n`;
    process.stdout.write(report.outcomes.map(line).join(''));
    if (report.after.problems.length) {
      process.stdout.write('Problems remaining after the repair:\n');
      printProblems(report.after.problems);
    }
    note(`repair: ${repaired.length} repaired, ${failed.length} not repaired; ${report.after.problems.length} problems remain\n`);
  }
  if (failed.length || report.after.problems.length) {
    throw new CliError(`repair left ${Math.max(failed.length, report.after.problems.length)} problem(s) unrepaired`, EXIT.PROBLEMS);
  }
}

export function registerMaintenanceCommands(program: Command): void {
  addPassphraseOptions(
    program
      .command('scrub')
      .description('verify every chunk, header, name, symlink target and control file of a vault (read-only; safe while mounted)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .option('--json', 'print one JSON object {files, bytes, skipped, problems: [{kind, cipherPath, plainPath, chunk, detail}]}')
      .option('--changed', 'verify only files whose size or times changed since they last verified clean (state kept outside the vault)')
      .addOption(backendOption()),
  ).action((cipherDir: string, opts: ScrubCliOptions) => scrubCommand(cipherDir, opts));

  addPassphraseOptions(
    program
      .command('backup')
      .description('copy the cipher directory (ciphertext only) to REMOTE through rclone; never deletes remote files unless --mirror')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .argument('<remote>', 'any rclone destination: a local path, remote:path (sftp, s3, webdav, …)')
      .option('--mirror', 'also delete remote files that no longer exist locally (rclone sync)')
      .option('--verify', 'then download the remote copy and verify it with the key, like scrub (asks for the passphrase first)')
      .option('--rclone-config <file>', 'rclone configuration file (default: your own rclone configuration)')
      .option('-q, --quiet', 'no summary when all went well (for cron and timers); errors and problems are still printed')
      .option('--json', 'print one JSON object {files, bytes, checks, deletes, seconds, remote, mirror, verify}')
      .addOption(backendOption()),
  ).action((cipherDir: string, remote: string, opts: BackupCliOptions) => backupCommand(cipherDir, remote, opts));

  addPassphraseOptions(
    program
      .command('restore')
      .description('rebuild a whole vault from a backup into CIPHERDIR (new or empty), then verify it')
      .argument('<remote>', 'the backup (rclone path)')
      .argument('<cipherdir>', 'where to rebuild the vault: a new or empty folder')
      .option('--rclone-config <file>', 'rclone configuration file')
      .option('--json', 'print one JSON object {files, bytes, …, verify: {files, bytes, skipped, problems}}')
      .addOption(backendOption()),
  ).action((remote: string, cipherDir: string, opts: TransferCliOptions) => restoreCommand(remote, cipherDir, opts));

  addPassphraseOptions(
    program
      .command('repair')
      .description('scrub, then replace every damaged file and control file by its backup copy if that copy verifies (damaged versions are kept aside)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .requiredOption('--from <remote>', 'the backup to repair from (rclone path)')
      .option('--rclone-config <file>', 'rclone configuration file')
      .option('--json', 'print one JSON object {repaired, notRepaired, problems, quarantine}')
      .addOption(backendOption()),
  ).action((cipherDir: string, opts: RepairCliOptions) => repairCommand(cipherDir, opts));
}
