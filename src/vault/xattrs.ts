/**
 * Extended attributes (docs/FORMAT.md §14.2): each plaintext attribute `user.NAME` of an entry is
 * stored as an extended attribute of its cipher entry, named `user.sealfs.` + the base32
 * AES-SIV encryption of the whole plaintext name, whose value is AEAD-sealed under the xattr key
 * with associated data that binds it to its entry (a file's header, a directory's id) and to its
 * plaintext name: a value copied to another entry or another name fails authentication.
 *
 * Only the user namespace is stored. security.*, trusted.* and system.* (POSIX ACLs among them)
 * mean something to the kernel itself, which a stored copy in the cipher folder could not carry
 * faithfully (and a provider could try to plant): setting or removing one is EOPNOTSUPP, reading
 * one ENODATA, as on a file system without them.
 */
import { openBlob, sealBlob } from '../crypto/blob.js';
import { CIPHER_IDS, cipherFromId, NONCE_BYTES, TAG_BYTES, type CipherName } from '../crypto/ciphers.js';
import { HEADER_BYTES } from '../crypto/header.js';
import { DIR_ID_BYTES, type NameCipher } from './names.js';
import { errno } from './tree.js';

/** What a cipher entry's attribute names start with when they are ours. */
export const XATTR_CIPHER_PREFIX = 'user.sealfs.';
/** The one plaintext namespace stored. */
export const XATTR_PLAIN_NAMESPACE = 'user.';
/** Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX: the most a name and a value may have. */
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
/** The stored value's format version (its first byte). */
export const XATTR_VALUE_VERSION = 1;
/** Bytes a stored value adds: version, cipher id, nonce, tag. */
export const XATTR_VALUE_OVERHEAD = 2 + NONCE_BYTES + TAG_BYTES;
/** The longest plaintext value: a stored one may have XATTR_SIZE_MAX bytes. */
export const MAX_PLAIN_XATTR_VALUE = XATTR_SIZE_MAX - XATTR_VALUE_OVERHEAD;
/**
 * The longest plaintext name (bytes, `user.` included) whose stored name fits XATTR_NAME_MAX:
 * 12 + ceil(8 · (16 + L) / 5) ≤ 255.
 */
export const MAX_PLAIN_XATTR_NAME = Math.floor(((XATTR_NAME_MAX - XATTR_CIPHER_PREFIX.length) * 5) / 8) - 16;

const encoder = new TextEncoder();
const VALUE_LABEL = encoder.encode('sealfs v1 xattr value');
const PLAIN_PREFIX = encoder.encode(XATTR_PLAIN_NAMESPACE);

/** The entry an attribute belongs to, as its value's associated data names it. */
export type XattrOwner = { readonly kind: 'file'; readonly header: Uint8Array } | { readonly kind: 'dir'; readonly dirId: Uint8Array };

/** Kind bytes of the associated data: 'f' and 'd'. */
const KIND_BYTES = { file: 0x66, dir: 0x64 } as const;

/** Whether a plaintext attribute name is in the namespace sealfs stores. */
export function isStoredNamespace(name: Uint8Array): boolean {
  return name.length >= PLAIN_PREFIX.length && PLAIN_PREFIX.every((b, i) => name[i] === b);
}

/** The associated data of a value: label ‖ version ‖ cipher id ‖ kind ‖ binding ‖ name. */
export function xattrValueAd(version: number, cipherId: number, owner: XattrOwner, name: Uint8Array): Uint8Array {
  const binding = owner.kind === 'file' ? owner.header : owner.dirId;
  const expected = owner.kind === 'file' ? HEADER_BYTES : DIR_ID_BYTES;
  if (binding.length !== expected) throw new RangeError(`an xattr owner of kind ${owner.kind} is bound by ${expected} bytes, got ${binding.length}`);
  const ad = new Uint8Array(VALUE_LABEL.length + 3 + binding.length + name.length);
  ad.set(VALUE_LABEL, 0);
  let at = VALUE_LABEL.length;
  ad[at++] = version;
  ad[at++] = cipherId;
  ad[at++] = KIND_BYTES[owner.kind];
  ad.set(binding, at);
  ad.set(name, at + binding.length);
  return ad;
}

/** Names and values of extended attributes under one vault's keys. */
export class XattrCipher {
  constructor(
    private readonly key: Uint8Array,
    private readonly names: NameCipher,
    /** The cipher new values are sealed with (the vault's); each value says its own. */
    private readonly cipher: CipherName,
  ) {}

  wipe(): void {
    this.key.fill(0);
  }

  /**
   * The stored name of a plaintext name in the user namespace. EOPNOTSUPP outside it (callers
   * check isStoredNamespace first where another answer fits), EINVAL for `user.` alone,
   * ERANGE when the stored name would be longer than Linux allows.
   */
  cipherName(name: Uint8Array): string {
    if (!isStoredNamespace(name)) throw errno('EOPNOTSUPP', 'only user.* extended attributes are stored');
    if (name.length === PLAIN_PREFIX.length) throw errno('EINVAL', 'an extended attribute name needs a name after "user."');
    if (name.length > MAX_PLAIN_XATTR_NAME) throw errno('ERANGE', `extended attribute names are at most ${MAX_PLAIN_XATTR_NAME} bytes in a vault (this one has ${name.length})`);
    return XATTR_CIPHER_PREFIX + this.names.encryptXattrName(name);
  }

  /**
   * The plaintext name of a stored attribute name: null when the name is not one of ours (the
   * provider's or the system's own), undefined when it is ours by its prefix but does not
   * decrypt to a user.* name (damaged or planted).
   */
  plainName(stored: Uint8Array): Uint8Array | null | undefined {
    const text = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).toString('latin1');
    if (!text.startsWith(XATTR_CIPHER_PREFIX)) return null;
    const name = this.names.decryptXattrName(text.slice(XATTR_CIPHER_PREFIX.length));
    if (!name || !isStoredNamespace(name) || name.length === PLAIN_PREFIX.length || name.length > MAX_PLAIN_XATTR_NAME || name.includes(0)) return undefined;
    return name;
  }

  /** The stored value of `value`, bound to `owner` and `name`; E2BIG when too long to store. */
  seal(owner: XattrOwner, name: Uint8Array, value: Uint8Array, nonce?: Uint8Array): Buffer {
    if (value.length > MAX_PLAIN_XATTR_VALUE) throw errno('E2BIG', `extended attribute values are at most ${MAX_PLAIN_XATTR_VALUE} bytes in a vault (this one has ${value.length})`);
    const cipherId = CIPHER_IDS[this.cipher];
    const sealed = sealBlob(this.cipher, this.key, xattrValueAd(XATTR_VALUE_VERSION, cipherId, owner, name), value, nonce);
    return Buffer.concat([Buffer.from([XATTR_VALUE_VERSION, cipherId]), sealed]);
  }

  /** The plaintext of a stored value, or undefined when it does not authenticate for `owner` and `name`. */
  open(owner: XattrOwner, name: Uint8Array, stored: Uint8Array): Buffer | undefined {
    if (stored.length < XATTR_VALUE_OVERHEAD || stored[0] !== XATTR_VALUE_VERSION) return undefined;
    const cipher = cipherFromId(stored[1]!);
    if (!cipher) return undefined;
    return openBlob(cipher, this.key, xattrValueAd(stored[0], stored[1]!, owner, name), stored.subarray(2));
  }
}
