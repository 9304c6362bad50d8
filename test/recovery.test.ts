import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { VaultError } from '../src/vault/errors.js';
import { crc16, encodeRecoveryKey, parseRecoveryKey, RECOVERY_ALPHABET, RECOVERY_KEY_CHARS } from '../src/vault/recovery.js';
import { fromHex, toHex } from './helpers.js';

const FORMAT = /^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){10}$/;

function parseError(text: string): VaultError {
  try {
    parseRecoveryKey(text);
  } catch (err) {
    if (err instanceof VaultError && err.kind === 'bad-recovery-key') return err;
    throw err;
  }
  return expect.fail(`accepted ${text}`);
}

const KEYS: Uint8Array[] = [
  new Uint8Array(32),
  new Uint8Array(32).fill(0xff),
  fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'),
  new Uint8Array(randomBytes(32)),
];

describe('recovery key', () => {
  it('uses CRC-16/IBM-3740 (check value 0x29B1)', () => {
    expect(crc16(new TextEncoder().encode('123456789'))).toBe(0x29b1);
  });

  it('has a fixed shape: 11 groups of 5 Crockford base32 characters', () => {
    expect(RECOVERY_KEY_CHARS).toBe(55);
    for (const key of KEYS) expect(encodeRecoveryKey(key)).toMatch(FORMAT);
  });

  it('known answer for the key 00 01 … 1f', () => {
    // masterKey ‖ crc16(masterKey), big-endian, in Crockford base32; pinned so the format cannot drift.
    const text = encodeRecoveryKey(KEYS[2]!);
    expect(text).toBe(text.toUpperCase());
    const crc = crc16(KEYS[2]!);
    const bits = [...KEYS[2]!, crc >> 8, crc & 0xff].map((b) => b.toString(2).padStart(8, '0')).join('') + '000';
    const expected = bits.match(/.{5}/g)!.map((five) => RECOVERY_ALPHABET[parseInt(five, 2)]).join('');
    expect(text.replace(/-/g, '')).toBe(expected);
    expect(text).toBe('000G4-0R40M-30E20-9185G-R38E1-W8124-GK2GA-HC5RR-34D1P-70X3R-FJ7CR');
  });

  it('round-trips', () => {
    for (let i = 0; i < 200; i++) {
      const key = new Uint8Array(randomBytes(32));
      expect(toHex(parseRecoveryKey(encodeRecoveryKey(key)))).toBe(toHex(key));
    }
    for (const key of KEYS) expect(toHex(parseRecoveryKey(encodeRecoveryKey(key)))).toBe(toHex(key));
  });

  it('refuses keys that are not 32 bytes', () => {
    expect(() => encodeRecoveryKey(new Uint8Array(31))).toThrow(RangeError);
  });

  it('catches EVERY single-character substitution at every position, and names it', () => {
    let checked = 0;
    for (const key of KEYS) {
      const text = encodeRecoveryKey(key);
      const compact = text.replace(/-/g, '');
      for (let i = 0; i < compact.length; i++) {
        for (const char of RECOVERY_ALPHABET) {
          const typed = compact.slice(0, i) + char + compact.slice(i + 1);
          if (char === compact[i]) {
            expect(toHex(parseRecoveryKey(typed))).toBe(toHex(key));
            continue;
          }
          const err = parseError(typed);
          checked++;
          expect(err.message).toContain('checksum mismatch');
          // The hint is exact: every single substitution has its own CRC syndrome.
          expect(err.message).toContain(`group ${Math.floor(i / 5) + 1}, character ${(i % 5) + 1}`);
          expect(err.message).toContain(`check whether it is "${compact[i]}"`);
        }
      }
    }
    expect(checked).toBe(KEYS.length * 55 * 31);
  });

  it('catches every swap of two neighbouring characters', () => {
    for (const key of KEYS) {
      const compact = encodeRecoveryKey(key).replace(/-/g, '');
      for (let i = 0; i + 1 < compact.length; i++) {
        if (compact[i] === compact[i + 1]) continue;
        const typed = compact.slice(0, i) + compact[i + 1] + compact[i] + compact.slice(i + 2);
        parseError(typed);
      }
    }
  });

  it('accepts lower case, spaces, missing dashes and the look-alikes O, I, L', () => {
    const key = KEYS[3]!;
    const text = encodeRecoveryKey(key);
    const variants = [
      text.toLowerCase(),
      text.replace(/-/g, ''),
      text.replace(/-/g, ' '),
      `  ${text.replace(/-/g, '\n')}\n`,
      text.replace(/0/g, 'O').replace(/1/g, 'l'),
      text.replace(/0/g, 'o').replace(/1/g, 'I').toLowerCase(),
      text.replace(/-/g, '').replace(/(.{4})/g, '$1 - '),
    ];
    for (const variant of variants) expect(toHex(parseRecoveryKey(variant))).toBe(toHex(key));
  });

  it('explains a wrong length', () => {
    const text = encodeRecoveryKey(KEYS[3]!);
    expect(parseError(text.slice(0, -6)).message).toMatch(/expected 55 characters \(11 groups of 5\), got 50/);
    expect(parseError(`${text}A`).message).toMatch(/got 56/);
    expect(parseError('').message).toMatch(/empty/);
    expect(parseError('   - ').message).toMatch(/empty/);
  });

  it('explains a character that is never used', () => {
    const text = encodeRecoveryKey(KEYS[3]!);
    const withU = `U${text.slice(1)}`;
    const err = parseError(withU);
    expect(err.message).toContain('"U" at group 1, character 1');
    expect(err.message).toContain('did you mean V?');
    expect(parseError(`${text.slice(0, 7)}*${text.slice(8)}`).message).toContain('"*" at group 2, character 2');
  });

  it('rejects non-zero padding bits in the last character', () => {
    const compact = encodeRecoveryKey(KEYS[0]!).replace(/-/g, '');
    const last = RECOVERY_ALPHABET.indexOf(compact.at(-1)!);
    for (let pad = 1; pad < 8; pad++) {
      parseError(compact.slice(0, -1) + RECOVERY_ALPHABET[last ^ pad]);
    }
  });
});
