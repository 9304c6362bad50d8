/**
 * The inode table's hard links (src/fs/nodetable.ts): the names of one file share one node,
 * as they share one inode on a local disk, and each name comes and goes on its own.
 */
import { describe, expect, it } from 'vitest';
import { NodeTable } from '../src/fs/nodetable.js';

describe('NodeTable: hard links', () => {
  it('gives a further name of a file the node of its first, counting the lookups of both', () => {
    const nodes = new NodeTable();
    const dir = nodes.remember(nodes.root, 'dir');
    const a = nodes.remember(nodes.root, 'a');
    expect(nodes.withInode('42')).toBeUndefined();
    const b = nodes.addLink(a, dir, 'b', '42');
    expect(b).toBe(a);
    expect(a.lookups).toBe(2);
    expect(nodes.withInode('42')).toBe(a);
    expect(nodes.named(dir, 'b')).toBe(a);
    // Looking up either name again is the same node.
    expect(nodes.remember(dir, 'b')).toBe(a);
    expect(nodes.remember(nodes.root, 'a')).toBe(a);
    expect(a.lookups).toBe(4);
    expect(nodes.path(a)).toBe('/a');
  });

  it('keeps the node under its other name when one name is unlinked, renamed over or renamed', () => {
    const nodes = new NodeTable();
    const a = nodes.remember(nodes.root, 'a');
    nodes.addLink(a, nodes.root, 'b', '7');
    nodes.addLink(a, nodes.root, 'c', '7');
    nodes.detach(nodes.root, 'a'); // its first name
    expect(nodes.path(a)).toBe('/b');
    expect(nodes.named(nodes.root, 'a')).toBeUndefined();
    nodes.move(nodes.root, 'c', nodes.root, 'd'); // a further name renamed
    expect(nodes.named(nodes.root, 'd')).toBe(a);
    expect(nodes.named(nodes.root, 'c')).toBeUndefined();
    const other = nodes.remember(nodes.root, 'other');
    nodes.move(nodes.root, 'other', nodes.root, 'b'); // its current name renamed over
    expect(nodes.named(nodes.root, 'b')).toBe(other);
    expect(nodes.path(a)).toBe('/d');
    nodes.detach(nodes.root, 'd'); // its last name
    expect(nodes.path(a)).toBeUndefined();
    expect(a.lastPath).toBe('/d');
    // A file whose names are all gone is no longer found by its inode (inode numbers are reused).
    expect(nodes.withInode('7')).toBeUndefined();
    expect(nodes.get(a.id)).toBe(a);
  });

  it('forgets every name of a node the kernel forgot, and a name with a node of its own keeps it', () => {
    const nodes = new NodeTable();
    const a = nodes.remember(nodes.root, 'a');
    const own = nodes.remember(nodes.root, 'own');
    expect(nodes.addLink(a, nodes.root, 'own', '9')).toBe(own);
    nodes.addLink(a, nodes.root, 'b', '9');
    nodes.forget(a.id, a.lookups);
    expect(nodes.get(a.id)).toBeUndefined();
    expect(nodes.named(nodes.root, 'a')).toBeUndefined();
    expect(nodes.named(nodes.root, 'b')).toBeUndefined();
    expect(nodes.withInode('9')).toBeUndefined();
    const again = nodes.remember(nodes.root, 'b');
    expect(again).not.toBe(a);
  });

  it('reaches a node by the name last found to exist', () => {
    const nodes = new NodeTable();
    const a = nodes.remember(nodes.root, 'a');
    const dir = nodes.remember(nodes.root, 'dir');
    nodes.addLink(a, dir, 'b', '5');
    nodes.preferName(a, dir, 'b');
    expect(nodes.path(a)).toBe('/dir/b');
    expect(nodes.named(nodes.root, 'a')).toBe(a);
    nodes.detach(dir, 'b');
    expect(nodes.path(a)).toBe('/a');
    nodes.preferName(a, nodes.root, 'zzz'); // not one of its names: nothing changes
    expect(nodes.path(a)).toBe('/a');
  });
});
