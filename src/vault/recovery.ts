/**
 * The recovery key (docs/FORMAT.md §13): the 32-byte master key in a form a person can
 * write on paper and type back. Crockford base32 of masterKey ‖ CRC-16, in groups of 5.
 *
 * The CRC is CRC-16/IBM-3740 (polynomial 0x1021, not reflected). Bits are laid out most
 * significant first in both the CRC and the base32 encoding, so one mistyped character is
 * an error burst of at most 5 bits, and two swapped neighbours one of at most 10 bits; a
 * CRC of degree 16 detects every burst of up to 16 bits. Both mistakes are therefore
 * always caught, not just with high probability.
 */
import { base32crockford } from '@scure/base';
import { KEY_BYTES } from '../crypto/ciphers.js';
import { VaultError } from './errors.js';

export const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CRC_BYTES = 2;
/** Characters of a recovery key: ceil((32 + 2) · 8 / 5) = 55, the last 3 bits zero. */
export const RECOVERY_KEY_CHARS = Math.ceil(((KEY_BYTES + CRC_BYTES) * 8) / 5);
export const RECOVERY_GROUP = 5;
export const RECOVERY_GROUPS = RECOVERY_KEY_CHARS / RECOVERY_GROUP;

/** CRC-16/IBM-3740 (a.k.a. CRC-16/CCITT-FALSE): poly 0x1021, init 0xFFFF, no reflection, no final xor. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function withCrc(masterKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(KEY_BYTES + CRC_BYTES);
  out.set(masterKey, 0);
  const crc = crc16(masterKey);
  out[KEY_BYTES] = crc >> 8;
  out[KEY_BYTES + 1] = crc & 0xff;
  return out;
}

/**
 * Characters in groups of RECOVERY_GROUP joined by dashes: the one grouping of a recovery
 * key, as it is printed and as the prompt shows it while it is typed back from paper.
 */
export function groupRecoveryKey(compact: string): string {
  const groups: string[] = [];
  for (let i = 0; i < compact.length; i += RECOVERY_GROUP) groups.push(compact.slice(i, i + RECOVERY_GROUP));
  return groups.join('-');
}

/** `XXXXX-XXXXX-…`: 11 groups of 5 characters. */
export function encodeRecoveryKey(masterKey: Uint8Array): string {
  if (masterKey.length !== KEY_BYTES) throw new RangeError(`master key must be ${KEY_BYTES} bytes, got ${masterKey.length}`);
  return groupRecoveryKey(base32crockford.encode(withCrc(masterKey)));
}

/** The key from canonical (normalised) characters, or undefined if the checksum fails. */
function decodeChecked(canonical: string): Uint8Array | undefined {
  let bytes: Uint8Array;
  try {
    // Throws on non-zero padding bits (a mistake in the last character).
    bytes = base32crockford.decode(canonical);
  } catch {
    return undefined;
  }
  if (bytes.length !== KEY_BYTES + CRC_BYTES) return undefined;
  const key = bytes.slice(0, KEY_BYTES);
  const stored = (bytes[KEY_BYTES]! << 8) | bytes[KEY_BYTES + 1]!;
  return crc16(key) === stored ? key : undefined;
}

function where(index: number): string {
  return `group ${Math.floor(index / RECOVERY_GROUP) + 1}, character ${(index % RECOVERY_GROUP) + 1}`;
}

const TOTAL_BITS = RECOVERY_KEY_CHARS * 5;
const KEY_BITS = KEY_BYTES * 8;
const DATA_BITS = (KEY_BYTES + CRC_BYTES) * 8;

/**
 * Per bit of the 275-bit string: how flipping it changes the checksum difference
 * crc16(key) ⊕ storedCrc (the CRC is linear), or, for the 3 padding bits, the padding.
 */
let unitSyndromes: Uint16Array | undefined;

function syndromeTable(): Uint16Array {
  if (unitSyndromes) return unitSyndromes;
  const table = new Uint16Array(TOTAL_BITS);
  const zero = crc16(new Uint8Array(KEY_BYTES));
  for (let bit = 0; bit < KEY_BITS; bit++) {
    const message = new Uint8Array(KEY_BYTES);
    message[bit >> 3] = 0x80 >> (bit & 7);
    table[bit] = crc16(message) ^ zero;
  }
  for (let bit = KEY_BITS; bit < DATA_BITS; bit++) table[bit] = 0x8000 >> (bit - KEY_BITS);
  unitSyndromes = table;
  return table;
}

/**
 * Every single-character change that would make the checksum (and padding) match. Since
 * the CRC is linear this is a table lookup per candidate, not a decode.
 */
function singleCorrections(canonical: string): { index: number; char: string }[] {
  const values = Array.from(canonical, (c) => RECOVERY_ALPHABET.indexOf(c));
  const bits = new Uint8Array(TOTAL_BITS);
  values.forEach((v, i) => {
    for (let k = 0; k < 5; k++) bits[i * 5 + k] = (v >> (4 - k)) & 1;
  });
  const byteAt = (n: number) => bits.slice(n * 8, n * 8 + 8).reduce((acc, b) => (acc << 1) | b, 0);
  const key = Uint8Array.from({ length: KEY_BYTES }, (_, n) => byteAt(n));
  const syndrome = crc16(key) ^ ((byteAt(KEY_BYTES) << 8) | byteAt(KEY_BYTES + 1));
  const padding = bits.slice(DATA_BITS).reduce((acc, b) => (acc << 1) | b, 0);
  const table = syndromeTable();
  const found: { index: number; char: string }[] = [];
  for (let i = 0; i < values.length; i++) {
    for (let delta = 1; delta < 32; delta++) {
      let syn = syndrome;
      let pad = padding;
      for (let k = 0; k < 5; k++) {
        if (!((delta >> (4 - k)) & 1)) continue;
        const bit = i * 5 + k;
        if (bit < DATA_BITS) syn ^= table[bit]!;
        else pad ^= 1 << (TOTAL_BITS - 1 - bit);
      }
      if (syn === 0 && pad === 0) found.push({ index: i, char: RECOVERY_ALPHABET[values[i]! ^ delta]! });
    }
  }
  return found;
}

/**
 * Reads a recovery key as typed: any case, with or without dashes or spaces, and with
 * Crockford's look-alikes (O for 0, I and L for 1). Throws VaultError('bad-recovery-key').
 */
export function parseRecoveryKey(text: string): Uint8Array {
  const compact = text.replace(/[\s-]+/g, '');
  if (compact.length === 0) throw new VaultError('bad-recovery-key', 'empty recovery key');
  const canonical = compact.toUpperCase().replace(/O/g, '0').replace(/[IL]/g, '1');
  for (let i = 0; i < canonical.length; i++) {
    const char = canonical[i]!;
    if (!RECOVERY_ALPHABET.includes(char)) {
      const hint = char === 'U' ? ' (the letter U is never used; did you mean V?)' : '';
      throw new VaultError(
        'bad-recovery-key',
        `recovery key: ${JSON.stringify(compact[i])} at ${where(i)} is not a recovery-key character${hint}; ` +
          `a recovery key uses only 0-9 and A-Z without I, L, O, U`,
      );
    }
  }
  if (canonical.length !== RECOVERY_KEY_CHARS) {
    throw new VaultError(
      'bad-recovery-key',
      `recovery key: expected ${RECOVERY_KEY_CHARS} characters (${RECOVERY_GROUPS} groups of ${RECOVERY_GROUP}), got ${canonical.length}; ` +
        `a group was probably left out or typed twice`,
    );
  }
  const key = decodeChecked(canonical);
  if (key) return key;
  const fixes = singleCorrections(canonical);
  const hint =
    fixes.length === 1
      ? ` The likely mistake is at ${where(fixes[0]!.index)}: you typed ${JSON.stringify(compact[fixes[0]!.index])}, check whether it is ${JSON.stringify(fixes[0]!.char)}.`
      : ' Compare each group with your paper copy.';
  throw new VaultError('bad-recovery-key', `recovery key checksum mismatch: a character is mistyped.${hint}`);
}
