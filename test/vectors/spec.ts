/**
 * FORMAT.md §1–§2 written down once for the independent tests (*.independent.test.ts): byte
 * helpers, HKDF and the subkeys, using only @noble/hashes and Node built-ins — never sealfs
 * code, so that these tests check the text of the format, not the implementation.
 */
import { readFileSync } from 'node:fs';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

export const utf8 = (text: string) => new TextEncoder().encode(text);
/** §10.2: names are UTF-8 kept byte for byte — a leading U+FEFF is part of the name. */
export const fromUtf8 = (bytes: Uint8Array) => new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
export const unhex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));
export const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
export const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** §1: HKDF(salt, ikm, info, L) — noble's argument order is hkdf(hash, ikm, salt, info, L). */
export const HKDF = (salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, L: number) => hkdf(sha256, ikm, salt, info, L);

/** §2: the subkeys of a master key (salt = empty). */
export function subkeys(MK: Uint8Array) {
  const empty = new Uint8Array(0);
  return {
    CK: HKDF(empty, MK, utf8('sealfs v1 content'), 32),
    NK: HKDF(empty, MK, utf8('sealfs v1 names'), 64),
    VK: HKDF(empty, MK, utf8('sealfs v1 config'), 32),
    DK: HKDF(empty, MK, utf8('sealfs v1 dirid'), 32),
  };
}

/** §2: a file's key, from the content key and the file's 24-byte header. */
export const fileKey = (CK: Uint8Array, H: Uint8Array) => HKDF(H, CK, utf8('sealfs v1 file key'), 32);

/** A JSON file of test/vectors/. */
export const loadVector = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')) as T;

// ---- What the vector files hold (test/vectors/README.md) -----------------------------------

export type EntryKindName = 'file' | 'dir' | 'symlink';

export interface KeysVector {
  masterKey: string;
  contentKey: { hex: string };
  nameKey: { hex: string };
  configKey: { hex: string };
}

/** `<cipher>-<chunk size>.json`: sealed files of the §4 plaintext rule. */
export interface ContentVectorFile<Cipher extends string = string> {
  cipher: Cipher;
  cipherId: number;
  chunkSize: number;
  masterKey: string;
  fileId: string;
  cases: {
    plaintextSize: number;
    chunks: number;
    sealedSize: number;
    plaintextSha256: string;
    header: string;
    fileKey: string;
    sealed: string;
  }[];
}

export interface StoredNameVector {
  name: string;
  sidecar?: string;
  sidecarContent?: string;
}

/** names.json. */
export interface NameVectors {
  masterKey: string;
  nameKey: { info: string; length: number; hex: string };
  dirIdKey: { info: string; length: number; hex: string };
  directories: { path: string; parentId?: string; name?: string; id: string }[];
  entries: { directory: string; parentId: string; name: string; nameUtf8: string; kind: EntryKindName; dirId?: string; payload: string; encrypted: string; encryptedLength: number; stored: Record<string, StoredNameVector> }[];
  longNameThresholds: { maxNameLength: number; parentId: string; kind: EntryKindName; name: string; nameBytes: number; dirId?: string; encrypted: string; encryptedLength: number; long: boolean; storedName: string; hash?: string; sidecar?: string; sidecarContent?: string }[];
  conflictCopies: { storedName: string; parentId: string; kind: EntryKindName; prefix: string; rest: string; name: string; dirId?: string; sidecar?: string; sidecarContent?: string }[];
  rejected: { storedName: string; parentId: string; kind: EntryKindName; reason: string }[];
  symlinkTargets: { associatedData: string; cases: { target: string; targetUtf8: string; stored: string }[] };
}

/** vault.json. */
export interface VaultVectors<Config = Record<string, unknown>> {
  masterKey: string;
  configKey: { info: string; length: number; hex: string };
  cases: { config: Config; body: string; macLine: string; mac: string; file: string }[];
}
