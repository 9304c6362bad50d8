import { VAULT_FILE } from './vaultfile.js';

/**
 * Names in a cipher directory that are not encrypted entries and never appear in the
 * plaintext view: sealfs's own control files, and the metadata and temporary files of
 * the sync clients that carry the vault. Anything else that does not decrypt is reported.
 */
const SYNC_CLIENT_FILES: readonly RegExp[] = [
  /^\.stfolder$/, /^\.stignore$/, /^\.stversions$/, /^\.syncthing\..*\.tmp$/, /^~syncthing~.*\.tmp$/, // Syncthing
  /^\.dropbox(\.attr|\.cache)?$/, // Dropbox
  /^\.?_?sync_[0-9a-f]+\.db(-wal|-shm)?$/i, /^\.(owncloud|nextcloud)sync\.log(\.\d+)?$/, /^\.sync-exclude\.lst$/, // Nextcloud / ownCloud
  /^\.tmp\.drive(download|upload)$/, // Google Drive
  /^desktop\.ini$/i, /^Thumbs\.db$/i, /^\.DS_Store$/, /^Icon\r$/, // operating systems
];

export function isVaultControlFile(name: string, atRoot: boolean): boolean {
  return atRoot && name === VAULT_FILE;
}

export function isSyncClientFile(name: string): boolean {
  return SYNC_CLIENT_FILES.some((pattern) => pattern.test(name));
}
