import { join } from 'node:path';
import { rootedCipherIo, type CipherIo } from './cipherio.js';
import { classify, compareCipherNames, displayName, entryKind, ListingNamer, nonCanonicalForm, readSidecar, sidecarContent, storedForm, undecryptableName } from './ciphernames.js';
import { LONG_DATA_SUFFIX, LONG_NAME_SUFFIX, longNameHash } from './longnames.js';
import { KIND_NOUNS, SPECIAL_NOUNS, type EntryKind, type NameCipher, type SpecialFile } from './names.js';
import { typeWords } from './controlfile.js';
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
  /**
   * A FIFO, socket or device, stored as an empty regular file (kind 'file') whose name says
   * which (FORMAT.md §14). The kernel opens it itself; PlainFs never does.
   */
  readonly special?: SpecialFile;
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
  /**
   * Set when the name decrypts but the entry is not of the kind it was stored as (a FIFO, or a
   * folder or link where a file was stored): what the provider put there, e.g. "a FIFO". The
   * entry is listed under its name as opaque; opening it is an integrity failure.
   */
  readonly replacedBy?: string;
}

export interface Listing {
  readonly entries: Map<string, DirEntry>;
  /** The entries whose names did not decrypt, under their placeholder names (also in entries). */
  readonly undecryptable: DirEntry[];
  /** How many entries are sync clients' conflict copies (DirEntry.conflict). */
  readonly conflicts: number;
}

/** Decodes names of one cipher directory; memoises per cipher name, since SIV is costly in JS. */
export class DirectoryDecoder {
  private readonly memo = new Map<string, { name: string; dirId?: Uint8Array; special?: SpecialFile } | null>();
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

  /** The cipher name under which a new entry `name` is stored, and its sidecar if long. `special`: a special file's (an empty regular file). */
  cipherNameFor(dirId: Uint8Array, name: string, ownDirId?: Uint8Array, special?: SpecialFile): { cipherName: string; sidecar?: { name: string; content: string } } {
    const encoded = this.names.encrypt(dirId, name, ownDirId, special);
    if (storedForm(encoded, this.maxNameLength) === 'short') return { cipherName: encoded };
    const hash = longNameHash(encoded);
    return { cipherName: hash + LONG_DATA_SUFFIX, sidecar: { name: hash + LONG_NAME_SUFFIX, content: sidecarContent(encoded) } };
  }

  /**
   * Decodes one cipher entry, or undefined for names that are not entries (ciphernames.classify).
   * A sidecar that cannot be read just now (I/O error, permission, too many open files) fails
   * the listing with EIO naming it, rather than showing a sound entry as undecryptable.
   */
  async decode(cipherDir: string, dirId: Uint8Array, atRoot: boolean, cipherName: string, listed: EntryKind | 'other', what = 'a special file'): Promise<DirEntry | undefined> {
    const type = classify(cipherName, atRoot);
    const kind = listed === 'other' ? 'file' : listed;
    if (type.type === 'not-utf8') return { name: undecryptableName(cipherName), cipherName, kind, undecryptable: true, opaque: true };
    if (type.type !== 'short' && type.type !== 'long') return listed === 'other' ? opaqueEntry(cipherName, atRoot) : undefined;
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
    // A regular file is tried as one only: junk names (files, the cheapest to plant) cost one
    // decryption each. Anything else may be a swap for an entry stored as another kind.
    const kinds: readonly EntryKind[] = listed === 'file' ? ['file'] : listed === 'other' ? ENTRY_KINDS : [listed, ...ENTRY_KINDS.filter((k) => k !== listed)];
    for (const stored of encoded && canonical ? kinds : []) {
      const plain = this.decrypt(dirId, encoded!, stored);
      if (!plain) continue;
      const shown = displayName(plain.name, type.conflict);
      const long = type.type === 'long' ? { sidecar: type.sidecar } : {};
      const conflict = type.conflict ? { conflict: type.conflict } : {};
      const noun = plain.special ? `${SPECIAL_NOUNS[plain.special.type]} (stored as an empty file)` : KIND_NOUNS[stored];
      if (stored !== listed) return { name: shown, cipherName, kind: 'file', opaque: true, replacedBy: `${what} in place of a ${noun}`, ...long, ...conflict };
      return { name: shown, cipherName, kind, ...(plain.dirId ? { dirId: plain.dirId } : {}), ...(plain.special ? { special: plain.special } : {}), ...long, ...conflict };
    }
    return { name: undecryptableName(cipherName), cipherName, kind, undecryptable: true, ...(listed === 'other' ? { opaque: true } : {}) };
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
    let conflicts = 0;
    const previous = this.decoded.get(cipherDir);
    const reusable = previous && Buffer.compare(previous.dirId, dirId) === 0 ? previous.byName : undefined;
    const byName = new Map<string, DirEntry>();
    const sound: DirEntry[] = [];
    const opaque: DirEntry[] = [];
    for (const item of raw) {
      const kind = entryKind(item);
      const known = reusable?.get(item.name);
      const decoded = known?.kind === kind ? known : await this.decode(cipherDir, dirId, atRoot, item.name, kind, typeWords(item));
      if (!decoded) continue;
      if (kind !== 'other' && !decoded.opaque && (decoded === known || classify(item.name, atRoot).type === 'short')) byName.set(item.name, decoded);
      (decoded.opaque ? opaque : sound).push(decoded);
    }
    // Sound entries are named first: an entry planted under another kind's cipher name of the
    // same plaintext name (a FIFO where folder "x" once was, beside file "x") gets the
    // "(duplicate n)" name, never the real entry's.
    for (const decoded of [...sound, ...opaque]) {
      const shown = namer.name(decoded.name);
      const entry = shown === decoded.name ? decoded : { ...decoded, name: shown };
      entries.set(entry.name, entry);
      if (entry.undecryptable) undecryptable.push(entry);
      if (entry.conflict !== undefined) conflicts++;
    }
    // Bounded: only the directories listed last are remembered.
    if (this.decoded.size >= MAX_REMEMBERED_DIRS) this.decoded.clear();
    this.decoded.set(cipherDir, { dirId, byName });
    return { entries, undecryptable, conflicts };
  }
}

const ENTRY_KINDS = Object.keys(KIND_NOUNS) as EntryKind[];

/**
 * A FIFO, socket or device in a cipher directory whose name does not decrypt: listed like an undecryptable name (as an
 * empty file, see DirEntry.opaque), unless its name is one no listing shows (the vault
 * file, a sync client's file, a sidecar: one in a sidecar's place already makes its long
 * entry show as undecryptable, and scrub reports it).
 */
function opaqueEntry(cipherName: string, atRoot: boolean): DirEntry | undefined {
  const type = classify(cipherName, atRoot).type;
  if (type === 'vault-file' || type === 'sync-client' || type === 'sidecar') return undefined;
  return { name: undecryptableName(cipherName), cipherName, kind: 'file', undecryptable: true, opaque: true };
}
