import { InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES } from '../crypto/backend.js';
import { CIPHER_NAMES, parseCipherName } from '../crypto/ciphers.js';
import { chunkSizeLog2 } from '../crypto/header.js';

/** Option parsers shared by the commands: they turn bad values into usage errors (exit 2). */
export function parseChunkSize(text: string): number {
  const match = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(text.trim());
  if (!match) throw new InvalidArgumentError('expected a size such as 4K, 64K or 1M');
  const unit = (match[2] ?? '').toLowerCase();
  const size = Number(match[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1);
  try {
    chunkSizeLog2(size);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return size;
}

export function integerArg(min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return value;
  };
}

export const cipherOption = () =>
  new Option('--cipher <name>', `cipher: ${CIPHER_NAMES.join(' or ')}`).default('aes-256-gcm').argParser((text) => {
    try {
      return parseCipherName(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  });

export const chunkSizeOption = () =>
  new Option('--chunk-size <size>', 'chunk size, a power of two from 4K to 1M').default(64 * 1024, '64K').argParser(parseChunkSize);

export const backendOption = () =>
  new Option('--backend <name>', 'crypto backend (default: $SEALFS_BACKEND, else native, else node)').choices(BACKEND_NAMES);
