/**
 * `sealfs --version`: what a bug report needs to know about this installation. The version
 * comes from the package's own package.json (the one `npm install -g` put next to this
 * code), the formats from their modules, and the crypto backend and libfuse from loading
 * the two native addons the way a command would: what is printed is what would be used.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { BACKEND_ENV, selectBackend } from '../crypto/backends/index.js';
import { FORMAT_VERSION } from '../crypto/header.js';
import { loadFuseBinding } from '../fs/kernel.js';
import { packageRoot } from '../packageroot.js';
import { KEYSTORE_VERSION } from '../vault/keystore.js';
import { VAULT_FORMAT_VERSION } from '../vault/vaultfile.js';
import type { CliIo } from './io.js';

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!;

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The backend commands would use (a missing native addon is explained on stderr by selectBackend). */
function cryptoLine(): string {
  try {
    const backend = selectBackend();
    const detail = backend.name === 'native' && 'opensslVersion' in backend ? ` (${String(backend.opensslVersion)})` : '';
    return `${backend.name}${detail}${process.env[BACKEND_ENV] ? `, chosen by $${BACKEND_ENV}` : ''}`;
  } catch (err) {
    return `not available (${firstLine(err)})`;
  }
}

/** The libfuse the FUSE addon runs with; the addon may be missing or its libfuse3 not installed. */
function libfuseLine(): string {
  try {
    return loadFuseBinding().libfuseVersion;
  } catch (err) {
    return `not available (${firstLine(err)})`;
  }
}

export function versionText(): string {
  return [
    `sealfs ${packageVersion()}`,
    // What each writer writes; the vault file and key store readers would also take older
    // versions (none exists yet), a sealed file's header must match (docs/FORMAT.md).
    `formats: vault file ${VAULT_FORMAT_VERSION}, sealed files ${FORMAT_VERSION}, key store ${KEYSTORE_VERSION} (reads and writes these)`,
    `crypto: ${cryptoLine()}`,
    `libfuse: ${libfuseLine()}`,
    `node: ${process.version} (N-API ${process.versions.napi})`,
  ].join('\n') + '\n';
}

/**
 * Adds -V/--version to the top-level command. Commander's own .version() takes a fixed
 * string up front; this one loads the addons only when asked.
 */
export function addVersionOption(program: Command, io: CliIo): void {
  program.option('-V, --version', 'print the version, formats, crypto backend and libfuse version').on('option:version', () => {
    io.stdout.write(versionText());
    // Ends parsing like Commander's own --version (runCli turns exit code 0 into success).
    throw new CommanderError(0, 'sealfs.version', '');
  });
}
