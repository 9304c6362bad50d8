import { aessiv } from '@noble/ciphers/aes.js';
import { nativeKeys } from '../crypto/nativekeys.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { fromBase32, fromBase64url, toBase32, toBase64url } from './encoding.js';
import { NameError } from './errors.js';

const encoder = new TextEncoder();
// ignoreBOM: a name or target that starts with U+FEFF keeps it (the default would strip it).
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** A lone UTF-16 surrogate has no UTF-8 form: TextEncoder would silently turn it into U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Directory ids are 64 bits: enough to tell directories apart, short enough for path budgets. */
export const DIR_ID_BYTES = 8;
/** The root directory's id: the key already makes it unique to the vault. */
export const ROOT_DIR_ID = new Uint8Array(DIR_ID_BYTES);
/** Longest plaintext name (bytes of UTF-8), as on Linux file systems. */
export const MAX_PLAIN_NAME_BYTES = 255;

const SYMLINK_AD = encoder.encode('sealfs v1 symlink');
/** Extended-attribute names (docs/FORMAT.md §14.2): a label of their own, so no file name or target ever decrypts as one. */
const XATTR_NAME_AD = encoder.encode('sealfs v1 xattr name');
const SIV_TAG_BYTES = 16;

/**
 * AES-SIV (RFC 5297) with one associated-data string: OpenSSL's through the addon when it is
 * built (a few µs), else @noble/ciphers' (30–90 µs; it runs for every name a program creates
 * or looks up). The same bytes either way. OpenSSL refuses an empty plaintext, which no name
 * or symlink target is; @noble serves it all the same.
 */
function sivEncrypt(key: Uint8Array, ad: Uint8Array, plain: Uint8Array): Uint8Array {
  const native = nativeKeys();
  return native && plain.length > 0 ? native.sivEncrypt(key, ad, plain) : aessiv(key, ad).encrypt(plain);
}

/** The plaintext, or undefined when `sealed` does not authenticate under `key` and `ad`. */
function sivDecrypt(key: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  const native = nativeKeys();
  if (native && sealed.length > SIV_TAG_BYTES) return native.sivDecrypt(key, ad, sealed) ?? undefined;
  try {
    return aessiv(key, ad).decrypt(sealed);
  } catch {
    return undefined;
  }
}

export type EntryKind = 'file' | 'dir' | 'symlink';

/** Each kind of entry in words, for messages. */
export const KIND_NOUNS: Readonly<Record<EntryKind, string>> = { file: 'file', dir: 'directory', symlink: 'symbolic link' };

/**
 * A FIFO, socket, character or block device (docs/FORMAT.md §14): stored as an empty regular
 * file whose name payload says which, so it needs no special inode in the cipher folder (which
 * a sync client would not carry, and which stays hostile junk there).
 */
export interface SpecialFile {
  readonly type: SpecialType;
  /** The device number as the kernel gives it (0 for a FIFO or socket). */
  readonly rdev: number;
}

/** 'p' FIFO, 's' socket, 'c' character device, 'b' block device: the byte t of the payload. */
export type SpecialType = 'p' | 's' | 'c' | 'b';

/** Each special type in words, for messages. */
export const SPECIAL_NOUNS: Readonly<Record<SpecialType, string>> = { p: 'FIFO', s: 'socket', c: 'character device', b: 'block device' };

/** The first payload byte of a special file: no v1 file name holds NUL, so no file name starts with it. */
const SPECIAL_MARK = 0x00;
/** Mark, type, 64-bit device number: the bytes before a special file's name. */
export const SPECIAL_PREFIX_BYTES = 1 + 1 + 8;

function isSpecialType(t: string): t is SpecialType {
  return t === 'p' || t === 's' || t === 'c' || t === 'b';
}

/** A decrypted directory entry name. Directories also carry their own id; special files what they are. */
export interface PlainName {
  readonly name: string;
  readonly dirId?: Uint8Array;
  readonly special?: SpecialFile;
}

export function validatePlainName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || LONE_SURROGATE.test(name)) {
    throw new NameError('invalid', `invalid file name ${JSON.stringify(name)}`);
  }
  if (encoder.encode(name).length > MAX_PLAIN_NAME_BYTES) {
    throw new NameError('too-long', `file name is longer than ${MAX_PLAIN_NAME_BYTES} bytes`);
  }
}

/**
 * Name encryption (docs/FORMAT.md §10): AES-SIV (RFC 5297, AES-256) under the name key,
 * associated data = the parent directory's id, so an entry moved into another directory
 * no longer decrypts. A directory's name also carries the directory's own id, so its
 * identity can never be separated from it or lost.
 */
export class NameCipher {
  constructor(
    private readonly nameKey: Uint8Array,
    private readonly dirIdKey: Uint8Array,
  ) {}

  /** Zeroes both keys (the vault is being locked); nothing can be encrypted or decrypted after. */
  wipe(): void {
    this.nameKey.fill(0);
    this.dirIdKey.fill(0);
  }

  /**
   * The id a directory gets when created: derived from where it is created, so two
   * replicas that create the same directory offline produce the same ciphertext name and
   * the sync client merges them instead of splitting them.
   */
  deriveDirId(parentId: Uint8Array, name: string): Uint8Array {
    const input = new Uint8Array(parentId.length + encoder.encode(name).length);
    input.set(parentId, 0);
    input.set(encoder.encode(name), parentId.length);
    return hmac(sha256, this.dirIdKey, input).subarray(0, DIR_ID_BYTES);
  }

  /**
   * The base32 ciphertext name, before any long-name shortening. `special`: the name of an
   * empty regular file that stands for a FIFO, socket or device (payload 0x00 ‖ t ‖
   * uint64be(rdev) ‖ name, FORMAT.md §10.2).
   */
  encrypt(parentId: Uint8Array, name: string, dirId?: Uint8Array, special?: SpecialFile): string {
    validatePlainName(name);
    const utf8 = encoder.encode(name);
    let payload = utf8;
    if (dirId) {
      payload = new Uint8Array(DIR_ID_BYTES + utf8.length);
      payload.set(dirId, 0);
      payload.set(utf8, DIR_ID_BYTES);
    } else if (special) {
      payload = specialPayload(special, utf8);
    }
    return toBase32(sivEncrypt(this.nameKey, parentId, payload));
  }

  /** Decrypts a base32 ciphertext name; undefined if it is not one of this directory's. */
  decrypt(parentId: Uint8Array, encoded: string, kind: EntryKind): PlainName | undefined {
    const bytes = fromBase32(encoded);
    if (!bytes || bytes.length <= 16) return undefined;
    const payload = sivDecrypt(this.nameKey, parentId, bytes);
    if (!payload) return undefined;
    const isDir = kind === 'dir';
    if (isDir && payload.length <= DIR_ID_BYTES) return undefined;
    // Only a regular file can stand for a special file (a link or folder under such a name is
    // a swap, and a directory's payload starts with its id, which may be any byte).
    if (kind === 'file' && payload[0] === SPECIAL_MARK) return specialName(payload);
    try {
      const name = decoder.decode(isDir ? payload.subarray(DIR_ID_BYTES) : payload);
      validatePlainName(name);
      return isDir ? { name, dirId: payload.slice(0, DIR_ID_BYTES) } : { name };
    } catch {
      return undefined;
    }
  }

  /** The name a special file has in directory `parentId` (see encrypt). */
  encryptSpecial(parentId: Uint8Array, name: string, special: SpecialFile): string {
    return this.encrypt(parentId, name, undefined, special);
  }

  encryptSymlinkTarget(target: string): string {
    if (LONE_SURROGATE.test(target)) throw new NameError('invalid', 'symlink target is not valid Unicode');
    return toBase64url(sivEncrypt(this.nameKey, SYMLINK_AD, encoder.encode(target)));
  }

  /** An extended attribute's full plaintext name (bytes, e.g. "user.xdg.tags") as base32 (§14.2). */
  encryptXattrName(name: Uint8Array): string {
    return toBase32(sivEncrypt(this.nameKey, XATTR_NAME_AD, name));
  }

  /** The plaintext name bytes, or undefined when `encoded` is not canonical base32 or does not authenticate. */
  decryptXattrName(encoded: string): Uint8Array | undefined {
    const bytes = fromBase32(encoded);
    if (!bytes || bytes.length <= SIV_TAG_BYTES) return undefined;
    return sivDecrypt(this.nameKey, XATTR_NAME_AD, bytes);
  }

  decryptSymlinkTarget(stored: string): string | undefined {
    const bytes = fromBase64url(stored);
    const plain = bytes && sivDecrypt(this.nameKey, SYMLINK_AD, bytes);
    if (!plain) return undefined;
    try {
      return decoder.decode(plain);
    } catch {
      return undefined;
    }
  }
}

/** The largest device number: the kernel passes FUSE a 32-bit one (fuse_mknod_in.rdev). */
const MAX_RDEV = 2 ** 32 - 1;

/** 0x00 ‖ t ‖ uint64be(rdev) ‖ UTF-8(N) (FORMAT.md §10.2). */
function specialPayload(special: SpecialFile, utf8: Uint8Array): Uint8Array<ArrayBuffer> {
  if (!isSpecialType(special.type)) throw new NameError('invalid', `unknown special file type ${JSON.stringify(special.type)}`);
  const rdev = special.type === 'c' || special.type === 'b' ? special.rdev : 0;
  if (!Number.isInteger(rdev) || rdev < 0 || rdev > MAX_RDEV) throw new NameError('invalid', `invalid device number ${rdev}`);
  const payload = new Uint8Array(SPECIAL_PREFIX_BYTES + utf8.length);
  payload[0] = SPECIAL_MARK;
  payload[1] = special.type.charCodeAt(0);
  new DataView(payload.buffer).setBigUint64(2, BigInt(rdev));
  payload.set(utf8, SPECIAL_PREFIX_BYTES);
  return payload;
}

/**
 * A special file's name from its payload, or undefined unless the payload is canonical: a
 * known type, device number 0 for a FIFO or socket, and a valid name after the prefix.
 */
function specialName(payload: Uint8Array): PlainName | undefined {
  if (payload.length <= SPECIAL_PREFIX_BYTES) return undefined;
  const type = String.fromCharCode(payload[1]!);
  if (!isSpecialType(type)) return undefined;
  const big = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getBigUint64(2);
  if (big > BigInt(MAX_RDEV)) return undefined;
  const rdev = Number(big);
  if ((type === 'p' || type === 's') && rdev !== 0) return undefined;
  try {
    const name = decoder.decode(payload.subarray(SPECIAL_PREFIX_BYTES));
    validatePlainName(name);
    return { name, special: { type, rdev } };
  } catch {
    return undefined;
  }
}
