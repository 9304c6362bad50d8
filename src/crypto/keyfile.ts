import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { KEY_BYTES } from './ciphers.js';

/** Text form of a key file (docs/FORMAT.md §8): one line, the prefix and 64 hex digits. */
export const KEY_FILE_PREFIX = 'sealfs-key-v1:';

/** Why a key file cannot be used (reading it can also fail with the usual errno errors). */
export type KeyFileProblem = 'malformed';

export class KeyFileError extends Error {
  constructor(
    readonly kind: KeyFileProblem,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export function generateMasterKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_BYTES));
}

export function formatKeyFile(key: Uint8Array): string {
  return `${KEY_FILE_PREFIX}${Buffer.from(key).toString('hex')}\n`;
}

/**
 * Reads a key file: the text form, or exactly 32 raw bytes (so a key made with
 * `head -c 32 /dev/urandom` can be brought as it is). Anything else is a KeyFileError.
 */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  const data = await readFile(path);
  if (data.length === KEY_BYTES) return new Uint8Array(data);
  const text = data.toString('utf8').trim();
  const match = /^sealfs-key-v1:([0-9a-fA-F]{64})$/.exec(text);
  if (!match) {
    throw new KeyFileError('malformed', path, `${path}: not a sealfs key file (expected "${KEY_FILE_PREFIX}" and 64 hex digits, or 32 raw bytes)`);
  }
  return new Uint8Array(Buffer.from(match[1]!, 'hex'));
}

/** Writes a new key file with mode 0600; refuses to replace an existing file. */
export async function writeNewKeyFile(path: string, key: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(formatKeyFile(key));
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
