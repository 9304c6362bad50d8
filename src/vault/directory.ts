import { join } from 'node:path';
import { rootedCipherIo, type CipherIo } from './cipherio.js';
import { classify, compareCipherNames, displayName, entryKind, ListingNamer, nonCanonicalForm, readSidecar, sidecarContent, storedForm, undecryptableName } from './ciphernames.js';
import { LONG_DATA_SUFFIX, LONG_NAME_SUFFIX, longNameHash } from './longnames.js';
import type { EntryKind, NameCipher } from './names.js';
import { errno } from './tree.js';

/** Directories whose last listing DirectoryDecoder keeps for the next one. */
const MAX_REMEMBERED_DIRS = 64;

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
  /**
   * A FIFO, socket or device, or a name that is not UTF-8 (also undecryptable): listed so
   * that the user sees it, shown as an empty file without access, never opened or followed.
   */
  readonly opaque?: boolean;
}

export interface Listing {
  readonly entries: Map<string, DirEntry>;
  /** The entries whose names did not decrypt, under their placeholder names (also in entries). */
  readonly undecryptable: DirEntry[];
}

/** Decodes names of one cipher directory; memoises per cipher name, since SIV is costly in JS. */
export class DirectoryDecoder {
  private readonly memo = new Map<string, { name: string; dirId?: Uint8Array } | null>();
  /** Per cipher directory, the decoded entries of its last listing that have no sidecar (see list). */
  private readonly decoded = new Map<string, { dirId: Uint8Array; byName: Map<string, DirEntry> }>();

  constructor(
    private readonly names: NameCipher,
    private readonly maxNameLength: number,
    private readonly io: CipherIo = rootedCipherIo(),
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
    if (storedForm(encoded, this.maxNameLength) === 'short') return { cipherName: encoded };
    const hash = longNameHash(encoded);
    return { cipherName: hash + LONG_DATA_SUFFIX, sidecar: { name: hash + LONG_NAME_SUFFIX, content: sidecarContent(encoded) } };
  }

  /**
   * Decodes one cipher entry, or undefined for names that are not entries (ciphernames.classify).
   * A sidecar that cannot be read just now (I/O error, permission, too many open files) fails
   * the listing with EIO naming it, rather than showing a sound entry as undecryptable.
   */
  async decode(cipherDir: string, dirId: Uint8Array, atRoot: boolean, cipherName: string, kind: EntryKind): Promise<DirEntry | undefined> {
    const type = classify(cipherName, atRoot);
    if (type.type === 'not-utf8') return { name: undecryptableName(cipherName), cipherName, kind, undecryptable: true, opaque: true };
    if (type.type !== 'short' && type.type !== 'long') return undefined;
    let encoded: string | undefined;
    if (type.type === 'long') {
      const path = join(cipherDir, type.sidecar);
      const read = await readSidecar(path, type.hash, this.io);
      if (read.ok) encoded = read.encoded;
      else if (read.fault === 'unreadable') throw errno('EIO', `long-name sidecar ${path}: ${read.detail}`, 'read');
    } else {
      encoded = type.encoded;
    }
    const canonical = encoded !== undefined && nonCanonicalForm(type.type, encoded, this.maxNameLength) === undefined;
    const plain = encoded && canonical ? this.decrypt(dirId, encoded, kind) : null;
    if (!plain) return { name: undecryptableName(cipherName), cipherName, kind, undecryptable: true };
    return {
      name: displayName(plain.name, type.conflict),
      cipherName,
      kind,
      ...(plain.dirId ? { dirId: plain.dirId } : {}),
      ...(type.type === 'long' ? { sidecar: type.sidecar } : {}),
      ...(type.conflict ? { conflict: type.conflict } : {}),
    };
  }

  /**
   * Lists and decodes a whole cipher directory. An entry stored under its own name (no
   * sidecar) decodes to the same result every time: those of the directory's previous listing
   * are taken over, so that re-reading a directory of many (junk) names costs the readdir
   * and the naming, not every name's decoding again.
   */
  async list(cipherDir: string, dirId: Uint8Array, atRoot: boolean): Promise<Listing> {
    const raw = await this.io.readdirTypes(cipherDir);
    raw.sort((a, b) => compareCipherNames(a.name, b.name));
    const entries = new Map<string, DirEntry>();
    const namer = new ListingNamer(entries);
    const undecryptable: DirEntry[] = [];
    const previous = this.decoded.get(cipherDir);
    const reusable = previous && Buffer.compare(previous.dirId, dirId) === 0 ? previous.byName : undefined;
    const byName = new Map<string, DirEntry>();
    for (const item of raw) {
      const kind = entryKind(item);
      const known = reusable?.get(item.name);
      const decoded = kind === 'other' ? opaqueEntry(item.name, atRoot) : known?.kind === kind ? known : await this.decode(cipherDir, dirId, atRoot, item.name, kind);
      if (!decoded) continue;
      if (kind !== 'other' && (decoded === known || classify(item.name, atRoot).type === 'short')) byName.set(item.name, decoded);
      const shown = namer.name(decoded.name);
      const entry = shown === decoded.name ? decoded : { ...decoded, name: shown };
      entries.set(entry.name, entry);
      if (entry.undecryptable) undecryptable.push(entry);
    }
    // Bounded: only the directories listed last are remembered.
    if (this.decoded.size >= MAX_REMEMBERED_DIRS) this.decoded.clear();
    this.decoded.set(cipherDir, { dirId, byName });
    return { entries, undecryptable };
  }
}

/**
 * A FIFO, socket or device in a cipher directory: listed like an undecryptable name (as an
 * empty file, see DirEntry.opaque), unless its name is one no listing shows (the vault
 * file, a sync client's file, a sidecar: one in a sidecar's place already makes its long
 * entry show as undecryptable, and scrub reports it).
 */
function opaqueEntry(cipherName: string, atRoot: boolean): DirEntry | undefined {
  const type = classify(cipherName, atRoot).type;
  if (type === 'vault-file' || type === 'sync-client' || type === 'sidecar') return undefined;
  return { name: undecryptableName(cipherName), cipherName, kind: 'file', undecryptable: true, opaque: true };
}
