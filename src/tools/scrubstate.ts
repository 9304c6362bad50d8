/**
 * Local state of `sealfs scrub --changed`: which files verified clean, as hashed keys of
 * (cipher path, size, mtime, ctime, inode). Kept OUTSIDE the cipher directory, in
 * `$XDG_STATE_HOME/sealfs/<vaultId>.scrub.json` (else `~/.local/state/sealfs/…`); it holds
 * no names and no key material.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isVaultId, stateDir } from '../vault/paths.js';

export const SCRUB_STATE_FORMAT = 'sealfs-scrub-state';
const SCRUB_STATE_VERSION = 1;

export function scrubStatePath(vaultId: string, dir: string = stateDir()): string {
  if (!isVaultId(vaultId)) throw new RangeError(`invalid vault id ${JSON.stringify(vaultId)}`);
  return join(dir, `${vaultId}.scrub.json`);
}

interface StoredState {
  format: string;
  version: number;
  vaultId: string;
  updated: string;
  clean: string[];
}

/** The keys of files that last verified clean; empty when there is no (usable) state yet. */
export async function loadScrubState(vaultId: string, dir?: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(scrubStatePath(vaultId, dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
  try {
    const state = JSON.parse(text) as StoredState;
    if (state.format !== SCRUB_STATE_FORMAT || state.version !== SCRUB_STATE_VERSION || state.vaultId !== vaultId || !Array.isArray(state.clean)) {
      return new Set();
    }
    return new Set(state.clean.filter((k) => typeof k === 'string'));
  } catch {
    // A damaged state file only costs a full verification.
    return new Set();
  }
}

/** Replaces the state atomically (temporary file, fsync, rename); mode 0600 in a 0700 folder. */
export async function saveScrubState(vaultId: string, clean: readonly string[], dir?: string): Promise<string> {
  const path = scrubStatePath(vaultId, dir);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const state: StoredState = { format: SCRUB_STATE_FORMAT, version: SCRUB_STATE_VERSION, vaultId, updated: new Date().toISOString(), clean: [...clean].sort() };
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify(state) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return path;
}
