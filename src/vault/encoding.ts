import { base32nopad, base64urlnopad } from '@scure/base';

/**
 * Lower-case RFC 4648 base32 without padding: only a–z and 2–7, which every case-insensitive
 * file system and sync service accepts in a file name.
 */
export const BASE32_CHARS = /^[a-z2-7]+$/;

export function toBase32(bytes: Uint8Array): string {
  return base32nopad.encode(bytes).toLowerCase();
}

/** Decodes canonical base32 (the form toBase32 writes), or returns undefined. */
export function fromBase32(text: string): Uint8Array | undefined {
  if (!BASE32_CHARS.test(text)) return undefined;
  try {
    const bytes = base32nopad.decode(text.toUpperCase());
    return toBase32(bytes) === text ? bytes : undefined;
  } catch {
    return undefined;
  }
}

export function toBase64url(bytes: Uint8Array): string {
  return base64urlnopad.encode(bytes);
}

export function fromBase64url(text: string): Uint8Array | undefined {
  try {
    const bytes = base64urlnopad.decode(text);
    return base64urlnopad.encode(bytes) === text ? bytes : undefined;
  } catch {
    return undefined;
  }
}
