/**
 * Tree keeps decrypted listings for their time, and no more than a bounded number of entries
 * in all (issue 10, item 8: a provider can make any number of folders of any size).
 */
import { describe, expect, it } from 'vitest';
import type { DirectoryDecoder, DirEntry, Listing } from '../src/vault/directory.js';
import { Tree } from '../src/vault/tree.js';

/** A decoder that lists `size` files in every folder and counts its readings. */
function countingDecoder(size: number): { decoder: DirectoryDecoder; reads: string[] } {
  const reads: string[] = [];
  const decoder = {
    list: async (cipherDir: string): Promise<Listing> => {
      reads.push(cipherDir);
      const entries = new Map<string, DirEntry>();
      for (let i = 0; i < size; i++) entries.set(`f${i}`, { name: `f${i}`, cipherName: `c${i}`, kind: 'file' });
      entries.set('sub', { name: 'sub', cipherName: 'csub', kind: 'dir', dirId: new Uint8Array(16) });
      return { entries, undecryptable: [], conflicts: 0 };
    },
  } as unknown as DirectoryDecoder;
  return { decoder, reads };
}

describe('Tree: listings kept', () => {
  it('a listing is read once within its time, again after it', async () => {
    const { decoder, reads } = countingDecoder(3);
    const tree = new Tree('/cipher', decoder, 60_000);
    await tree.listing(tree.root);
    await tree.listing(tree.root);
    expect(reads).toEqual(['/cipher']);
    const expiring = new Tree('/cipher', decoder, 0);
    await expiring.listing(expiring.root);
    await expiring.listing(expiring.root);
    expect(reads.length).toBe(3);
  });

  it('beyond the bound of entries kept, the oldest listings go; the newest always stays', async () => {
    const { decoder, reads } = countingDecoder(9); // 10 entries per folder
    const tree = new Tree('/cipher', decoder, 60_000, 25);
    const root = tree.root;
    const sub = tree.childDir(root, (await tree.listing(root)).entries.get('sub')!);
    const subsub = tree.childDir(sub, (await tree.listing(sub)).entries.get('sub')!);
    await tree.listing(subsub); // 30 entries: the root's listing (the oldest) goes
    expect(reads).toEqual(['/cipher', '/cipher/csub', '/cipher/csub/csub']);
    await tree.listing(sub);
    await tree.listing(subsub);
    expect(reads.length).toBe(3);
    await tree.listing(root);
    expect(reads.at(-1)).toBe('/cipher');
    expect(reads.length).toBe(4);

    // A single listing larger than the bound is still kept while it is the newest.
    const big = countingDecoder(100);
    const small = new Tree('/cipher', big.decoder, 60_000, 25);
    await small.listing(small.root);
    await small.listing(small.root);
    expect(big.reads.length).toBe(1);
  });
});
