import { resolve } from 'node:path';
import { DirectoryDecoder, type DirEntry, type Listing } from './directory.js';
import { MAX_PLAIN_NAME_BYTES, ROOT_DIR_ID } from './names.js';

/** A directory of the plaintext tree and where it lives in the cipher tree. */
export interface DirRef {
  readonly plainPath: string;
  readonly cipherPath: string;
  readonly dirId: Uint8Array;
  readonly atRoot: boolean;
}

/** A plaintext path resolved to its cipher entry. */
export interface Resolved {
  readonly parent: DirRef;
  readonly entry: DirEntry;
  readonly cipherPath: string;
}

interface CachedListing {
  listing: Listing;
  readAt: number;
  /** Its entries when it was kept (what the bound counts). */
  counted: number;
}

/**
 * Entries of all kept listings together, beyond which the oldest listings go (a provider can
 * make any number of folders of any size; only the ones in use need to stay).
 */
export const MAX_CACHED_ENTRIES = 300_000;

/**
 * An errno error. `syscall`: the error comes from a failed system call on the cipher
 * directory, not from PlainFs's own checks (the mount logs those; see src/fs).
 */
export function errno(code: string, message: string, syscall?: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  if (syscall !== undefined) err.syscall = syscall;
  return err;
}

export function splitPath(plainPath: string): string[] {
  return plainPath.split('/').filter((part) => part !== '');
}

/**
 * A name longer than any entry may have is ENAMETOOLONG, as a local disk answers (the kernel
 * passes names of up to 1,024 bytes to FUSE): never ENOENT for a lookup, nor whatever a
 * creation would run into later.
 */
function checkNameLength(parent: string, name: string): void {
  if (Buffer.byteLength(name) > MAX_PLAIN_NAME_BYTES) {
    throw errno('ENAMETOOLONG', `a name in ${parent} is ${Buffer.byteLength(name)} bytes long, more than ${MAX_PLAIN_NAME_BYTES}`);
  }
}

export function joinPlain(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/**
 * A cipher entry's path: cipher names never hold '/' or '..', so plain concatenation gives
 * what path.join would, without normalising the whole path on every lookup.
 */
function cipherChild(dir: DirRef, cipherName: string): string {
  return `${dir.cipherPath}/${cipherName}`;
}

/** Resolves plaintext paths through cached, decrypted directory listings. */
export class Tree {
  private readonly listings = new Map<string, CachedListing>();
  private readonly reading = new Map<string, Promise<Listing>>();
  private cachedEntries = 0;
  readonly root: DirRef;

  constructor(
    cipherDir: string,
    readonly decoder: DirectoryDecoder,
    /** How long a listing is trusted: MountSettings.listingTtlMs. */
    private readonly listingTtlMs: number,
    private readonly maxCachedEntries = MAX_CACHED_ENTRIES,
  ) {
    // Absolute and without a trailing '/', so that cipherChild() and path.join() agree.
    this.root = { plainPath: '/', cipherPath: resolve(cipherDir), dirId: ROOT_DIR_ID, atRoot: true };
  }

  /**
   * The directory's listing, read again once its time is up. `anyAge`: a kept listing of any
   * age will do (the caller checks every entry it uses against the cipher folder itself).
   */
  async listing(dir: DirRef, anyAge = false): Promise<Listing> {
    const cached = this.listings.get(dir.cipherPath);
    if (cached && (anyAge || Date.now() - cached.readAt < this.listingTtlMs)) return cached.listing;
    // Requests that need the same directory while it is being read wait for that one reading
    // (a directory of 100,000 names is not read once per request in flight).
    const reading = this.reading.get(dir.cipherPath);
    if (reading) return reading;
    const pending = this.decoder.list(dir.cipherPath, dir.dirId, dir.atRoot);
    this.reading.set(dir.cipherPath, pending);
    try {
      const listing = await pending;
      this.keep(dir.cipherPath, listing);
      return listing;
    } finally {
      this.reading.delete(dir.cipherPath);
    }
  }

  /**
   * Keeps a listing for its time; listings whose time is up, and the oldest ones beyond
   * MAX_CACHED_ENTRIES, go (the map's order is the order they were read in).
   */
  private keep(cipherPath: string, listing: Listing): void {
    this.drop(cipherPath);
    const now = Date.now();
    this.listings.set(cipherPath, { listing, readAt: now, counted: listing.entries.size });
    this.cachedEntries += listing.entries.size;
    for (const [key, cached] of this.listings) {
      if (key === cipherPath || (this.cachedEntries <= this.maxCachedEntries && now - cached.readAt < this.listingTtlMs)) break;
      this.drop(key);
    }
  }

  private drop(cipherPath: string): void {
    const cached = this.listings.get(cipherPath);
    if (!cached) return;
    this.cachedEntries -= cached.counted;
    this.listings.delete(cipherPath);
  }

  /** Records a change made through the mount, so the listing stays right without re-reading. */
  noteAdded(dir: DirRef, entry: DirEntry): void {
    this.listings.get(dir.cipherPath)?.listing.entries.set(entry.name, entry);
  }

  noteRemoved(dir: DirRef, name: string): void {
    this.listings.get(dir.cipherPath)?.listing.entries.delete(name);
  }

  /** Forgets cached listings of a directory and everything below it (after it moved or went). */
  forget(cipherPath: string): void {
    for (const key of [...this.listings.keys()]) {
      if (key === cipherPath || key.startsWith(cipherPath + '/')) this.drop(key);
    }
  }

  childDir(parent: DirRef, entry: DirEntry): DirRef {
    if (entry.kind !== 'dir' || !entry.dirId) throw errno('ENOTDIR', `${joinPlain(parent.plainPath, entry.name)} is not a directory`);
    return { plainPath: joinPlain(parent.plainPath, entry.name), cipherPath: cipherChild(parent, entry.cipherName), dirId: entry.dirId, atRoot: false };
  }

  /** The directory at `plainPath`; ENOENT or ENOTDIR otherwise. */
  async dir(plainPath: string): Promise<DirRef> {
    let dir = this.root;
    for (const part of splitPath(plainPath)) {
      checkNameLength(dir.plainPath, part);
      const entry = (await this.listing(dir)).entries.get(part);
      if (!entry) throw errno('ENOENT', `${joinPlain(dir.plainPath, part)} does not exist`);
      dir = this.childDir(dir, entry);
    }
    return dir;
  }

  /** The entry at `plainPath` (not the root), or undefined when it does not exist. */
  async lookup(plainPath: string): Promise<Resolved | undefined> {
    const parts = splitPath(plainPath);
    const name = parts.pop();
    if (name === undefined) throw errno('EINVAL', 'the root has no entry');
    const parent = await this.dir('/' + parts.join('/'));
    checkNameLength(parent.plainPath, name);
    const entry = (await this.listing(parent)).entries.get(name);
    return entry && this.resolved(parent, entry);
  }

  /** An entry of a listing of `parent`, with its cipher path. */
  resolved(parent: DirRef, entry: DirEntry): Resolved {
    return { parent, entry, cipherPath: cipherChild(parent, entry.cipherName) };
  }

  async resolve(plainPath: string): Promise<Resolved> {
    const found = await this.lookup(plainPath);
    if (!found) throw errno('ENOENT', `${plainPath} does not exist`);
    return found;
  }

  /** Parent directory and final name of a path that is about to be created. */
  async parentOf(plainPath: string): Promise<{ parent: DirRef; name: string }> {
    const parts = splitPath(plainPath);
    const name = parts.pop();
    if (name === undefined) throw errno('EEXIST', 'the root already exists');
    const parent = await this.dir('/' + parts.join('/'));
    checkNameLength(parent.plainPath, name);
    return { parent, name };
  }
}
