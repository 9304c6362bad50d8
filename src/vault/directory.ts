import type { Dirent } from 'node:fs';
import { join } from 'node:path';
import { cipherIo } from './cipherio.js';
import { isSyncClientFile, isVaultControlFile } from './control.js';
import { isLongHash, LONG_DATA_SUFFIX, LONG_NAME_SUFFIX, longNameHash } from './longnames.js';
import { MAX_PLAIN_NAME_BYTES, type EntryKind, type NameCipher } from './names.js';

/** One entry of a cipher directory as the plaintext view shows it. */
export interface DirEntry {
  /** Name in the plaintext view. */
  readonly name: string;
  /** Name of the entry in the cipher directory. */
  readonly cipherName: string;
  readonly kind: EntryKind;
  /** The directory's own id (directories only). */
  readonly dirId?: Uint8Array;
  /** Long-name sidecar holding the full encoded name, when the entry uses one. */
  readonly sidecar?: string;
  /** The text a sync client added to the ciphertext name: set for conflict copies. */
  readonly conflict?: string;
  /** The name could not be decrypted; shown under a marked placeholder name. */
  readonly undecryptable?: boolean;
}

export interface Listing {
  readonly entries: Map<string, DirEntry>;
  /** Cipher names that did not decrypt (also present in entries under placeholder names). */
  readonly undecryptable: string[];
}

/** Placeholder under which an undecryptable entry is listed, so the user can see and remove it. */
export const UNDECRYPTABLE_PREFIX = 'UNDECRYPTABLE ';

const BASE32_PREFIX = /^([a-z2-7]*)([\s\S]*)$/;

function kindOf(entry: Dirent): EntryKind | undefined {
  if (entry.isDirectory()) return 'dir';
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isFile()) return 'file';
  return undefined;
}

async function kindAt(path: string): Promise<EntryKind | undefined> {
  const st = await cipherIo().lstat(path);
  return st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : undefined;
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
  const fits = (text: string) => Buffer.byteLength(text) <= MAX_PLAIN_NAME_BYTES;
  if (fits(stem + tail)) return stem + tail;
  const chars = [...stem];
  while (chars.length > 1 && !fits(chars.join('') + tail)) chars.pop();
  const all = [...(chars.join('') + tail)];
  while (!fits(all.join(''))) all.pop();
  return all.join('');
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
  const text = extra
    .replace(/conflicted copy/gi, ' ')
    .replace(/'s\b/g, ' ')
    .replace(/[\s()._~]+/g, ' ')
    .replace(/^[\s-]+|[\s-]+$/g, '')
    .trim();
  return text ? `(conflict ${text})` : '(conflict)';
}

/** Decodes names of one cipher directory; memoises per cipher name, since SIV is costly in JS. */
export class DirectoryDecoder {
  private readonly memo = new Map<string, { name: string; dirId?: Uint8Array } | null>();

  constructor(
    private readonly names: NameCipher,
    private readonly maxNameLength: number,
  ) {}

  private decrypt(dirId: Uint8Array, encoded: string, kind: EntryKind) {
    const key = `${kind}:${Buffer.from(dirId).toString('hex')}:${encoded}`;
    let hit = this.memo.get(key);
    if (hit === undefined) {
      hit = this.names.decrypt(dirId, encoded, kind) ?? null;
      if (this.memo.size > 100_000) this.memo.clear();
      this.memo.set(key, hit);
    }
    return hit;
  }

  /** The cipher name under which a new entry `name` is stored, and its sidecar if long. */
  cipherNameFor(dirId: Uint8Array, name: string, ownDirId?: Uint8Array): { cipherName: string; sidecar?: { name: string; content: string } } {
    const encoded = this.names.encrypt(dirId, name, ownDirId);
    if (encoded.length <= this.maxNameLength) return { cipherName: encoded };
    const hash = longNameHash(encoded);
    return { cipherName: hash + LONG_DATA_SUFFIX, sidecar: { name: hash + LONG_NAME_SUFFIX, content: encoded } };
  }

  /** Decodes one cipher entry, or undefined for control files that never show. */
  async decode(cipherDir: string, dirId: Uint8Array, atRoot: boolean, cipherName: string, kind: EntryKind): Promise<DirEntry | undefined> {
    if (isVaultControlFile(cipherName, atRoot) || isSyncClientFile(cipherName)) return undefined;
    const [, prefix = '', rest = ''] = BASE32_PREFIX.exec(cipherName) ?? [];
    if (isLongHash(prefix) && rest.includes(LONG_NAME_SUFFIX) && !rest.includes(LONG_DATA_SUFFIX)) return undefined;
    let encoded = prefix;
    let extra = rest;
    let sidecar: string | undefined;
    if (isLongHash(prefix) && rest.includes(LONG_DATA_SUFFIX)) {
      sidecar = prefix + LONG_NAME_SUFFIX;
      extra = rest.replace(LONG_DATA_SUFFIX, '');
      const full = await cipherIo().readText(join(cipherDir, sidecar)).then((t) => t.trim(), () => '');
      encoded = longNameHash(full) === prefix ? full : '';
    }
    const plain = encoded ? this.decrypt(dirId, encoded, kind) : null;
    if (!plain) return { name: UNDECRYPTABLE_PREFIX + cipherName.slice(0, 200), cipherName, kind, undecryptable: true };
    const name = extra ? insertBeforeExtension(plain.name, conflictMarker(extra)) : plain.name;
    return {
      name,
      cipherName,
      kind,
      ...(plain.dirId ? { dirId: plain.dirId } : {}),
      ...(sidecar ? { sidecar } : {}),
      ...(extra ? { conflict: extra } : {}),
    };
  }

  /** Lists and decodes a whole cipher directory. */
  async list(cipherDir: string, dirId: Uint8Array, atRoot: boolean): Promise<Listing> {
    const raw = await cipherIo().readdirTypes(cipherDir);
    raw.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const entries = new Map<string, DirEntry>();
    const undecryptable: string[] = [];
    for (const item of raw) {
      const kind = kindOf(item) ?? (await kindAt(join(cipherDir, item.name)).catch(() => undefined));
      if (!kind) continue;
      const entry = await this.decode(cipherDir, dirId, atRoot, item.name, kind);
      if (!entry) continue;
      if (entry.undecryptable) undecryptable.push(entry.cipherName);
      entries.set(uniqueName(entries, entry.name), { ...entry, name: uniqueName(entries, entry.name) });
    }
    return { entries, undecryptable };
  }
}

/** Two cipher entries that decode to one name (say, a renamed and a re-created directory) both stay visible. */
function uniqueName(taken: Map<string, DirEntry>, name: string): string {
  if (!taken.has(name)) return name;
  for (let n = 2; ; n++) {
    const candidate = insertBeforeExtension(name, `(duplicate ${n})`);
    if (!taken.has(candidate)) return candidate;
  }
}
