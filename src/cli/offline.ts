/**
 * `sealfs ls|cat|export`: reading a vault without FUSE, for recovery on a machine that
 * cannot mount. Parsing and printing only; the work is in src/tools/offline.ts.
 */
import { openVault } from '../vault/vault.js';
import { PlainFs } from '../vault/plainfs.js';
import { ToolError } from '../tools/errors.js';
import { catFile, exportTree, listDirectory, type ListedEntry } from '../tools/offline.js';
import { backendOption } from './args.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { addPassphraseOptions, type VaultKeyOptions } from './passphrase.js';
import { unlockFromOptions } from './unlock.js';

interface OfflineOptions extends VaultKeyOptions {
  backend?: string;
}

async function openPlainFs(cipherDir: string, opts: OfflineOptions, io: CliIo): Promise<PlainFs> {
  const { masterKey } = await unlockFromOptions(cipherDir, opts, io);
  const warn = (line: string) => void io.stderr.write(`sealfs: ${line}\n`);
  const vault = await openVault(cipherDir, masterKey, { backend: opts.backend }).finally(() => masterKey.fill(0));
  return new PlainFs(vault, { readOnly: true, log: warn, logIntegrity: false });
}

function plainPath(path: string | undefined): string {
  const trimmed = (path ?? '/').replace(/\/+$/, '');
  return trimmed.startsWith('/') ? trimmed || '/' : `/${trimmed}`;
}

const TYPE_CHAR: Readonly<Record<ListedEntry['type'], string>> = { dir: 'd', file: '-', symlink: 'l', fifo: 'p', socket: 's', char: 'c', block: 'b', other: '?' };

function formatEntry(e: ListedEntry): string {
  const mode = e.mode.toString(8).padStart(4, '0');
  const when = e.mtime.toISOString().replace('T', ' ').slice(0, 19);
  const link = e.target !== undefined ? ` -> ${e.target}` : '';
  // A device shows its major and minor number where a file shows its size, as ls -l does.
  const size = e.rdev !== undefined ? `${Math.floor(e.rdev / 256) & 0xfff}, ${(e.rdev & 0xff) | (Math.floor(e.rdev / 4096) & ~0xff)}` : String(e.size);
  return `${TYPE_CHAR[e.type]} ${mode} ${size.padStart(12)} ${when} ${e.name}${link}`;
}

export function registerOfflineCommands(program: SealfsCommand, io: CliIo): void {
  addPassphraseOptions(
    program
      .command('ls')
      .summary('list a folder of a vault')
      .documented({ examples: ['sealfs ls ~/Dropbox/vault /Documents'], exits: ['IO', 'KEY', 'VAULT', 'INTEGRITY', 'INTERRUPTED'] })
      .description('list a directory of the vault straight from the cipher directory (no mount needed)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .argument('[path]', 'directory inside the vault', '/')
      .option('--json', 'one JSON array of {name, type, size, mode, mtime, rdev?, target?}; type is file, dir, symlink, fifo, socket, char, block or other')
      .addOption(backendOption()),
  ).action(async (cipherDir: string, path: string, opts: OfflineOptions & { json?: boolean }) => {
    const fs = await openPlainFs(cipherDir, opts, io);
    const entries = await listDirectory(fs, plainPath(path));
    io.stdout.write(opts.json ? JSON.stringify(entries) + '\n' : entries.map((e) => formatEntry(e) + '\n').join(''));
  });

  addPassphraseOptions(
    program
      .command('cat')
      .summary('print a file of a vault')
      .documented({ examples: ['sealfs cat ~/Dropbox/vault /Documents/notes.txt | less'], exits: ['IO', 'KEY', 'VAULT', 'INTEGRITY', 'INTERRUPTED'] })
      .description('decrypt one file of the vault to stdout (no mount needed)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .argument('<path>', 'file inside the vault')
      .addOption(backendOption()),
  ).action(async (cipherDir: string, path: string, opts: OfflineOptions) => {
    const fs = await openPlainFs(cipherDir, opts, io);
    await catFile(fs, plainPath(path), io.stdout);
  });

  addPassphraseOptions(
    program
      .command('export')
      .summary('decrypt files of a vault into a folder')
      .documented({ examples: ['sealfs export ~/Dropbox/vault /Photos ~/photos-copy'], exits: ['IO', 'KEY', 'VAULT', 'INTEGRITY', 'INTERRUPTED'] })
      .description('decrypt a file or a whole directory of the vault into DEST, which must not exist (no mount needed)')
      .argument('<cipherdir>', 'the vault (cipher directory)')
      .argument('<path>', 'file or directory inside the vault')
      .argument('<dest>', 'where to write the plaintext')
      .addOption(backendOption()),
  ).action(async (cipherDir: string, path: string, dest: string, opts: OfflineOptions) => {
    const fs = await openPlainFs(cipherDir, opts, io);
    const tell = (line: string) => void io.stderr.write(`sealfs: ${line}\n`);
    const s = await exportTree(fs, plainPath(path), dest, (failure) => tell(failure.message), tell);
    const fifos = s.fifos > 0 ? `, ${s.fifos} FIFOs` : '';
    const skipped = s.skipped > 0 ? ` (${s.skipped} sockets or devices not exported, listed above)` : '';
    io.stderr.write(`Exported ${s.files} files (${s.bytes} bytes), ${s.dirs} directories, ${s.symlinks} symlinks${fifos} to ${dest}${skipped}\n`);
    if (s.failed > 0) throw new ToolError('integrity', `${s.failed} ${s.failed === 1 ? 'entry' : 'entries'} failed authentication and were not exported (listed above)`);
  });
}
