import { join } from 'node:path';
import { queuedCipherIo, type CipherIo } from './cipherio.js';
import { classify, compareCipherNames, displayName, entryKind, readSidecar, sidecarContent, undecryptableName, uniqueName } from './ciphernames.js';
import { LONG_DATA_SUFFIX, LONG_NAME_SUFFIX, longNameHash } from './longnames.js';
import type { EntryKind, NameCipher } from './names.js';

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

/** Decodes names of one cipher directory; memoises per cipher name, since SIV is costly in JS. */
export class DirectoryDecoder {
  private readonly memo = new Map<string, { name: string; dirId?: Uint8Array } | null>();

  constructor(
    private readonly names: NameCipher,
    private readonly maxNameLength: number,
    private readonly io: CipherIo = queuedCipherIo,
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
    return { cipherName: hash + LONG_DATA_SUFFIX, sidecar: { name: hash + LONG_NAME_SUFFIX, content: sidecarContent(encoded) } };
  }

  /** Decodes one cipher entry, or undefined for names that are not entries (ciphernames.classify). */
  async decode(cipherDir: string, dirId: Uint8Array, atRoot: boolean, cipherName: string, kind: EntryKind): Promise<DirEntry | undefined> {
    const type = classify(cipherName, atRoot);
    if (type.type !== 'short' && type.type !== 'long') return undefined;
    let encoded: string | undefined;
    if (type.type === 'long') {
      const read = await readSidecar(join(cipherDir, type.sidecar), type.hash);
      if (read.ok) encoded = read.encoded;
    } else {
      encoded = type.encoded;
    }
    const plain = encoded ? this.decrypt(dirId, encoded, kind) : null;
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

  /** Lists and decodes a whole cipher directory. */
  async list(cipherDir: string, dirId: Uint8Array, atRoot: boolean): Promise<Listing> {
    const raw = await this.io.readdirTypes(cipherDir);
    raw.sort((a, b) => compareCipherNames(a.name, b.name));
    const entries = new Map<string, DirEntry>();
    const undecryptable: string[] = [];
    for (const item of raw) {
      const kind = entryKind(item);
      if (kind === 'other') continue;
      const entry = await this.decode(cipherDir, dirId, atRoot, item.name, kind);
      if (!entry) continue;
      if (entry.undecryptable) undecryptable.push(entry.cipherName);
      const name = uniqueName(entries, entry.name);
      entries.set(name, { ...entry, name });
    }
    return { entries, undecryptable };
  }
}
