/** The mount's inode table (src/fs/nodetable.ts), without mounting. */
import { describe, expect, it } from 'vitest';
import { NodeTable, ROOT_ID } from '../src/fs/nodetable.js';

describe('NodeTable', () => {
  it('gives one node per name, counting the kernel lookups of it', () => {
    const nodes = new NodeTable();
    expect(nodes.get(ROOT_ID)).toBe(nodes.root);
    expect(nodes.path(nodes.root)).toBe('/');
    const a = nodes.remember(nodes.root, 'a');
    expect(a.id).not.toBe(ROOT_ID);
    expect(nodes.remember(nodes.root, 'a')).toBe(a);
    expect(a.lookups).toBe(2);
    const b = nodes.remember(a, 'b');
    expect(b.id).not.toBe(a.id);
    expect(nodes.path(b)).toBe('/a/b');
    expect(nodes.childPath(b, 'c')).toBe('/a/b/c');
    expect(nodes.childPath(nodes.root, 'c')).toBe('/c');
    expect(nodes.get(b.id)).toBe(b);
    expect(nodes.size).toBe(3);
  });

  it('keeps a node until the kernel forgets every lookup of it, and never the root', () => {
    const nodes = new NodeTable();
    const a = nodes.remember(nodes.root, 'a');
    nodes.remember(nodes.root, 'a');
    nodes.forget(a.id, 1);
    expect(nodes.get(a.id)).toBe(a);
    nodes.forget(a.id, 1);
    expect(nodes.get(a.id)).toBeUndefined();
    // The same name looked up again is a new node: the kernel may not reuse a forgotten id.
    const again = nodes.remember(nodes.root, 'a');
    expect(again.id).not.toBe(a.id);
    expect(again.lookups).toBe(1);
    nodes.forget(ROOT_ID, 10);
    expect(nodes.get(ROOT_ID)).toBe(nodes.root);
    nodes.forget(12345, 1); // an unknown id is ignored
    expect(nodes.size).toBe(2);
  });

  it('moves a renamed directory with everything below it', () => {
    const nodes = new NodeTable();
    const dir = nodes.remember(nodes.root, 'dir');
    const sub = nodes.remember(dir, 'sub');
    const file = nodes.remember(sub, 'f.txt');
    const other = nodes.remember(nodes.root, 'other');
    nodes.move(nodes.root, 'dir', other, 'moved');
    expect(nodes.path(dir)).toBe('/other/moved');
    expect(nodes.path(file)).toBe('/other/moved/sub/f.txt');
    expect(nodes.remember(other, 'moved')).toBe(dir);
    // The old name is free: looking it up gives a new node.
    expect(nodes.remember(nodes.root, 'dir')).not.toBe(dir);
  });

  it('detaches a node renamed over or unlinked: it keeps serving its open handles under its last path', () => {
    const nodes = new NodeTable();
    const target = nodes.remember(nodes.root, 'target');
    const source = nodes.remember(nodes.root, 'source');
    nodes.opened(target, 7);
    nodes.opened(target, 9);
    nodes.move(nodes.root, 'source', nodes.root, 'target');
    expect(nodes.path(source)).toBe('/target');
    expect(nodes.path(target)).toBeUndefined();
    expect(nodes.describe(target)).toBe('/target');
    expect(nodes.anyHandle(target)).toBe(7);
    nodes.closed(target, 7);
    expect(nodes.anyHandle(target)).toBe(9);
    nodes.closed(target, 9);
    expect(nodes.anyHandle(target)).toBeUndefined();
    // Forgetting the detached node must not drop the name that now belongs to another node.
    nodes.forget(target.id, 1);
    expect(nodes.remember(nodes.root, 'target')).toBe(source);

    const gone = nodes.remember(nodes.root, 'gone');
    const child = nodes.remember(gone, 'child');
    nodes.detach(nodes.root, 'gone');
    expect(nodes.path(gone)).toBeUndefined();
    expect(nodes.path(child)).toBeUndefined();
    expect(nodes.childPath(gone, 'x')).toBeUndefined();
    expect(nodes.describe(child)).toBe('(deleted)');
    expect(nodes.get(gone.id)).toBe(gone);
    nodes.detach(nodes.root, 'never-seen'); // nothing to detach
  });

  it('exchange (RENAME_EXCHANGE) swaps two nodes\' places, with what is below them; one side may be unknown', () => {
    const nodes = new NodeTable();
    const a = nodes.remember(nodes.root, 'a');
    const d = nodes.remember(nodes.root, 'd');
    const inD = nodes.remember(d, 'inner');
    const x = nodes.remember(a, 'x');
    nodes.exchange(a, 'x', nodes.root, 'd');
    expect(nodes.path(x)).toBe('/d');
    expect(nodes.path(d)).toBe('/a/x');
    expect(nodes.path(inD)).toBe('/a/x/inner');
    // The kernel never looked up the other side: only the known one moves.
    nodes.exchange(nodes.root, 'd', a, 'never-looked-up');
    expect(nodes.path(x)).toBe('/a/never-looked-up');
    expect(nodes.childPath(nodes.root, 'd')).toBe('/d');
  });
});

