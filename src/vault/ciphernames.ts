/**
 * The names found in a cipher directory (docs/FORMAT.md §10.3–§10.5): what each one is,
 * how a long name's sidecar is read and checked, and under which name an entry shows in
 * the plaintext view (conflict copies, duplicates, undecryptable entries), and what an
 * "empty" directory may still hold. The mount and the offline tools (through PlainFs and
 * directory.ts) and scrub go through here, so they read every name alike. (Backup copies
 * cipher names as they are; it only asks syncclients.ts which names to leave out.)
 */
import type { Dirent } from 'node:fs';
import type { BoundedReader } from './cipherio.js';
import { readControlFile } from './controlfile.js';
import { LONG_DATA_SUFFIX, LONG_HASH_CHARS, LONG_NAME_SUFFIX, longNameHash } from './longnames.js';
import { DIR_ID_BYTES, MAX_PLAIN_NAME_BYTES, SPECIAL_PREFIX_BYTES, type EntryKind } from './names.js';
import { isSyncClientFile } from './syncclients.js';
import { VAULT_FILE } from './vaultfile.js';

/** What a name in a cipher directory is. `conflict`: the text a sync client added to it ('' if none). */
export type CipherNameType =
  /** `sealfs.vault` in the root. */
  | { readonly type: 'vault-file' }
  /** A sync client's or file manager's own file (src/vault/syncclients.ts). */
  | { readonly type: 'sync-client' }
  /** A long name's sidecar `<hash>.sfn`, or a sync client's copy of one: never an entry. */
  | { readonly type: 'sidecar'; readonly hash: string; readonly conflict: string }
  /** A long-name entry `<hash>.sfl`; its encoded name is in `sidecar`, `<hash>.sfn`. */
  | { readonly type: 'long'; readonly hash: string; readonly sidecar: string; readonly conflict: string }
  /** Any other name: an entry stored under its encoded name (which may be '': it cannot decrypt). */
  | { readonly type: 'short'; readonly encoded: string; readonly conflict: string }
  /** A name whose bytes are not UTF-8 (see nameFromBytes): listed as undecryptable, never addressed. */
  | { readonly type: 'not-utf8' };

/**
 * The string for a cipher name that is not valid UTF-8 (docs/FORMAT.md §10.4): every byte
 * below 0x80 as that character, every other byte b as the lone surrogate U+DC00 + b. No UTF-8
 * name decodes to a lone surrogate, so the result never equals another entry's name, two
 * different byte strings never give the same string, and the same bytes give the same string
 * in every listing. (Decoding with U+FFFD would merge `x\xff` and `x\xfe` into one name.)
 */
export function nameFromBytes(bytes: Uint8Array): string {
  let name = '';
  for (const byte of bytes) name += String.fromCharCode(byte < 0x80 ? byte : 0xdc00 + byte);
  return name;
}

/**
 * Whether `name` (a cipher name or path) holds a name that is not UTF-8 (nameFromBytes): one
 * with a lone surrogate, which is exactly what a string that is not well formed has.
 */
export function isNotUtf8(name: string): boolean {
  return !name.isWellFormed();
}

/** The bytes of a name that is not UTF-8, escaped for a reader: `x\xff` (nameFromBytes reversed). */
export function escapedBytes(name: string): string {
  let text = '';
  for (const char of name) {
    const code = char.charCodeAt(0);
    text += code >= 0xdc80 && code <= 0xdcff ? `\\x${(code - 0xdc00).toString(16)}` : char;
  }
  return text;
}

/** The longest run of base32 characters a name starts with, and the rest. */
const BASE32_PREFIX = /^([a-z2-7]*)([\s\S]*)$/;

/** Classifies one name of a cipher directory (`atRoot`: of the vault's root directory). */
export function classify(name: string, atRoot: boolean): CipherNameType {
  if (isNotUtf8(name)) return { type: 'not-utf8' };
  if (atRoot && name === VAULT_FILE) return { type: 'vault-file' };
  if (isSyncClientFile(name)) return { type: 'sync-client' };
  const [, prefix = '', rest = ''] = BASE32_PREFIX.exec(name) ?? [];
  // An encoded name is never LONG_HASH_CHARS long (FORMAT.md §10.3), so such a prefix is a hash.
  if (prefix.length === LONG_HASH_CHARS) {
    const at = rest.indexOf(LONG_DATA_SUFFIX);
    if (at >= 0) return { type: 'long', hash: prefix, sidecar: prefix + LONG_NAME_SUFFIX, conflict: rest.slice(0, at) + rest.slice(at + LONG_DATA_SUFFIX.length) };
    if (rest.includes(LONG_NAME_SUFFIX)) return { type: 'sidecar', hash: prefix, conflict: rest.replace(LONG_NAME_SUFFIX, '') };
  }
  return { type: 'short', encoded: mayBeEncodedName(prefix) ? prefix : '', conflict: rest };
}

/**
 * Whether `text` has the length of some encoded name: the base32 of a 16-byte tag and at
 * least one byte, at most MAX_ENCODED_NAME_CHARS, and a length base32 without padding can
 * have (never 1, 3 or 6 past a multiple of 8). Junk that fails this is undecryptable without
 * any AES-SIV call.
 */
function mayBeEncodedName(text: string): boolean {
  const rest = text.length % 8;
  return text.length >= MIN_ENCODED_NAME_CHARS && text.length <= MAX_ENCODED_NAME_CHARS && rest !== 1 && rest !== 3 && rest !== 6;
}

/**
 * What an entry of a cipher directory is; 'other' for FIFOs, sockets and devices, which
 * have no place in a vault. (Node resolves a directory entry of unknown type with lstat.)
 */
export function entryKind(entry: Dirent): EntryKind | 'other' {
  if (entry.isDirectory()) return 'dir';
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isFile()) return 'file';
  return 'other';
}

/**
 * The form in which an entry with encoded name E is stored (FORMAT.md §10.3): under E itself
 * when E has at most `maxNameLength` characters, else as `<h>.sfl` with E in `<h>.sfn`.
 * Only that form is accepted: the other one (which sealfs never writes) would let a planted
 * copy take an entry's name, so a reader treats it as undecryptable.
 */
export function storedForm(encoded: string, maxNameLength: number): 'short' | 'long' {
  return encoded.length <= maxNameLength ? 'short' : 'long';
}

/** Why an entry of type `type` holding encoded name E is not in its one stored form, or undefined when it is. */
export function nonCanonicalForm(type: 'short' | 'long', encoded: string, maxNameLength: number): string | undefined {
  if (storedForm(encoded, maxNameLength) === type) return undefined;
  return type === 'long'
    ? `it is stored as a long name, but its encoded name has ${encoded.length} characters, within the vault's limit of ${maxNameLength} (sealfs stores it under that name itself)`
    : `its encoded name has ${encoded.length} characters, over the vault's limit of ${maxNameLength} (sealfs stores such a name as a long name)`;
}

/** Whether `name` is a long-name entry (or a conflict copy of one) that reads the sidecar of `hash`. */
export function usesSidecar(name: string, hash: string): boolean {
  const type = classify(name, false);
  return type.type === 'long' && type.hash === hash;
}

/** The shortest encoded name: a file's (tag, then a 1-byte name) in base32. */
const MIN_ENCODED_NAME_CHARS = Math.ceil(((16 + 1) * 8) / 5);
/** The longest encoded name: a special file's (tag, mark, type, device number, then 255 bytes of name) in base32. */
export const MAX_ENCODED_NAME_CHARS = Math.ceil(((16 + Math.max(DIR_ID_BYTES, SPECIAL_PREFIX_BYTES) + MAX_PLAIN_NAME_BYTES) * 8) / 5);
/** The longest valid sidecar: the longest encoded name and its line end. No more is ever read. */
export const MAX_SIDECAR_BYTES = MAX_ENCODED_NAME_CHARS + 1;

const SIDECAR_CONTENT = /^([a-z2-7]+)\n$/;

/** What a sidecar holds: the encoded name E and one line end. */
export function sidecarContent(encoded: string): string {
  return `${encoded}\n`;
}

export type SidecarFault =
  /** There is no sidecar. */
  | 'missing'
  /** It is a directory, a symbolic link or a special file. */
  | 'not-regular'
  /** It could not be opened or read (permission, I/O error). */
  | 'unreadable'
  /** Its content is not one encoded name and a line end. */
  | 'malformed'
  /** It holds an encoded name, but not the one whose hash names it. */
  | 'mismatch';

export type SidecarRead = { readonly ok: true; readonly encoded: string } | { readonly ok: false; readonly fault: SidecarFault; readonly detail: string };

/**
 * Checks a sidecar's bytes against the hash that names it. The one rule (FORMAT.md §10.3):
 * the content is exactly E followed by one "\n", where E is lower-case base32 and hashes to
 * `hash`; no other whitespace, no second line, nothing else.
 */
export function parseSidecar(bytes: Uint8Array, hash: string): SidecarRead {
  if (bytes.length > MAX_SIDECAR_BYTES) return { ok: false, fault: 'malformed', detail: `it is longer than any encoded name (more than ${MAX_SIDECAR_BYTES} bytes)` };
  const match = SIDECAR_CONTENT.exec(Buffer.from(bytes).toString('latin1'));
  if (!match) return { ok: false, fault: 'malformed', detail: 'it does not hold exactly one encoded name and a line end' };
  if (longNameHash(match[1]!) !== hash) return { ok: false, fault: 'mismatch', detail: 'its content does not match its name (damaged or replaced)' };
  return { ok: true, encoded: match[1]! };
}

/**
 * Reads and checks the sidecar at `path` (see parseSidecar) through readControlFile: only a
 * regular file counts, and at most MAX_SIDECAR_BYTES + 1 bytes are read.
 */
export async function readSidecar(path: string, hash: string, io?: BoundedReader): Promise<SidecarRead> {
  const read = await readControlFile(path, MAX_SIDECAR_BYTES, io);
  if (read.ok) return parseSidecar(read.bytes, hash);
  if (read.fault === 'too-large') return { ok: false, fault: 'malformed', detail: `it is longer than any encoded name (more than ${MAX_SIDECAR_BYTES} bytes)` };
  return { ok: false, fault: read.fault, detail: read.detail };
}

/**
 * What a cipher directory whose plaintext view is empty still holds, and what goes with it
 * when it is removed; or, when it is not removable, why. `blocker`: an entry the plaintext
 * view hides but that must not be deleted (a FIFO, socket or device); no blocker: the view
 * shows an entry.
 */
export type EmptyDirContents =
  | {
      readonly empty: true;
      /** Orphan sidecars and sync clients' files (and links): removed with the directory. */
      readonly files: readonly string[];
      /** Sync clients' folders (and folders under sidecar names): removed only if empty, never recursively. */
      readonly dirs: readonly string[];
    }
  | { readonly empty: false; readonly blocker?: { readonly name: string; readonly why: string } };

/**
 * Whether the cipher directory with these entries (not the root) is empty in the plaintext
 * view, by the listing's own rules (classify, entryKind), and what must go with it.
 */
export function emptyDirContents(entries: readonly Dirent[]): EmptyDirContents {
  const files: string[] = [];
  const dirs: string[] = [];
  let blocker: { name: string; why: string } | undefined;
  for (const entry of entries) {
    const type = classify(entry.name, false).type;
    const kind = entryKind(entry);
    if (type === 'not-utf8') return { empty: false };
    // A sidecar's entry, if any, is an entry of this directory itself.
    if (type === 'short' || type === 'long') {
      if (kind !== 'other') return { empty: false };
      blocker ??= { name: entry.name, why: 'a FIFO, socket or device, which has no place in a vault' };
    } else if (kind === 'other') {
      blocker ??= { name: entry.name, why: 'a FIFO, socket or device, which has no place in a vault' };
    } else if (kind === 'dir') {
      dirs.push(entry.name);
    } else {
      files.push(entry.name);
    }
  }
  return blocker ? { empty: false, blocker } : { empty: true, files, dirs };
}

/** Bytes of one code point in UTF-8 (a lone surrogate is written as U+FFFD: 3 bytes). */
function utf8Bytes(codePoint: number): number {
  return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
}

/**
 * `name` cut to at most `maxBytes` bytes of UTF-8, at a code point boundary, keeping at
 * least `minCodePoints` code points; one pass.
 */
function cutToBytes(name: string, maxBytes: number, minCodePoints = 0): string {
  let bytes = 0;
  let end = 0;
  let count = 0;
  for (const char of name) {
    bytes += utf8Bytes(char.codePointAt(0)!);
    if (bytes > maxBytes && count >= minCodePoints) break;
    end += char.length;
    count++;
  }
  return name.slice(0, end);
}

/**
 * Inserts `marker` before the name's extension: "report.docx" → "report (marker).docx".
 * The result stays a valid name (at most 255 bytes): a long name loses the end of its stem,
 * then if need be the end of the whole, cut at code point boundaries.
 */
export function insertBeforeExtension(name: string, marker: string): string {
  const dot = name.lastIndexOf('.');
  const stem = dot <= 0 ? name : name.slice(0, dot);
  const tail = dot <= 0 ? ` ${marker}` : ` ${marker}${name.slice(dot)}`;
  const stemBudget = MAX_PLAIN_NAME_BYTES - Buffer.byteLength(tail);
  return cutToBytes(cutToBytes(stem, stemBudget, 1) + tail, MAX_PLAIN_NAME_BYTES);
}

const SYNCTHING_CONFLICT = /^\.?sync-conflict-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(\w+)/;

/**
 * Turns what a sync client added to a ciphertext name into a short marker for the plaintext
 * view, keeping what tells copies apart (date, time, who, which device):
 * " (conflicted copy 2026-11-22)" → "(conflict 2026-11-22)",
 * ".sync-conflict-20261122-101010-ABCDEFG" → "(conflict 2026-11-22 101010 ABCDEFG)".
 */
export function conflictMarker(extra: string): string {
  const syncthing = SYNCTHING_CONFLICT.exec(extra);
  if (syncthing) {
    const [, y, mo, d, h, mi, sec, device] = syncthing;
    return `(conflict ${y}-${mo}-${d} ${h}${mi}${sec} ${device})`;
  }
  const text = withoutControls(extra)
    .replace(/conflicted copy/gi, ' ')
    .replace(/'s(?![A-Za-z0-9_])/g, ' ')
    .replace(/[\p{White_Space}()._~]+/gu, ' ')
    .replace(/^[ -]+|[ -]+$/g, '');
  return text ? `(conflict ${text})` : '(conflict)';
}

/**
 * `text` with every Unicode control (Cc) and format (Cf) character, such as ESC, BEL or the
 * bidi override U+202E, replaced by a space: what reaches a shown name or a log line from a
 * cipher name cannot move the cursor, ring or reorder what a user reads.
 */
function withoutControls(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}]/gu, ' ');
}

/**
 * A cipher name or path quoted for a log line: JSON, with control and format characters
 * (which JSON leaves raw from U+007F on, such as U+202E) escaped as \uXXXX too.
 */
export function quotedForLog(text: string): string {
  return JSON.stringify(text).replace(/[\p{Cc}\p{Cf}]/gu, (char) =>
    Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

/** The name an entry shows under: its decrypted name, marked as a conflict copy if a sync client added text. */
export function displayName(plain: string, conflict: string): string {
  return conflict ? insertBeforeExtension(plain, conflictMarker(conflict)) : plain;
}

/** Placeholder under which an undecryptable entry is listed, so the user can see and remove it. */
export const UNDECRYPTABLE_PREFIX = 'UNDECRYPTABLE ';
/** Characters of the cipher name kept in the placeholder. */
const UNDECRYPTABLE_NAME_CHARS = 200;

/** A name of printable ASCII short enough to keep whole: the common junk, shown without the general cut below. */
const PLAIN_ASCII = new RegExp(`^[\\x20-\\x7e]{0,${UNDECRYPTABLE_NAME_CHARS}}$`);

export function undecryptableName(cipherName: string): string {
  if (PLAIN_ASCII.test(cipherName)) return UNDECRYPTABLE_PREFIX + cipherName;
  const shown = isNotUtf8(cipherName) ? escapedBytes(cipherName) : cipherName;
  return cutToBytes(UNDECRYPTABLE_PREFIX + withoutControls([...shown].slice(0, UNDECRYPTABLE_NAME_CHARS).join('')), MAX_PLAIN_NAME_BYTES);
}

/**
 * The order in which a directory's entries take their shown names: ascending cipher names,
 * compared as UTF-16 code units (byte order for the ASCII names sealfs writes).
 */
export function compareCipherNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Gives the entries of one directory listing their shown names, in the order of
 * compareCipherNames: a name already `taken` by an earlier entry (say, a renamed and a
 * re-created directory) becomes "name (duplicate n).ext" with the smallest n ≥ 2 that is
 * free. Names are only added while one listing is named, so a candidate found taken stays
 * taken: the search for a name resumes where the last one for it stopped, and thousands of
 * entries under one name cost linear time, not quadratic.
 */
export class ListingNamer {
  private readonly nextDuplicate = new Map<string, number>();

  constructor(private readonly taken: { has(name: string): boolean }) {}

  /** The shown name for an entry named `name`; the caller adds it to `taken`. */
  name(name: string): string {
    if (!this.taken.has(name)) return name;
    for (let n = this.nextDuplicate.get(name) ?? 2; ; n++) {
      const candidate = insertBeforeExtension(name, `(duplicate ${n})`);
      if (!this.taken.has(candidate)) {
        this.nextDuplicate.set(name, n + 1);
        return candidate;
      }
    }
  }
}
