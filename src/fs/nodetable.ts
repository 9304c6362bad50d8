/**
 * The inode table of a mount: what libfuse's high-level API keeps in C. One node per name the
 * kernel has looked up, holding its parent and name (so renaming a directory moves everything
 * below it at once) and the kernel's lookup count (a node lives until the kernel forgets it).
 * A node whose name was unlinked or renamed over stays usable through its open file handles.
 *
 * A file with several names (hard links) is one node, as it is one inode on a local disk:
 * the kernel keeps attributes and cached pages per node, so with a node per name a chmod or
 * a write through one name went unseen through the other until their caches expired. Such a
 * node holds its further names in `links`; kernel.ts decides which names are one file (the
 * same cipher inode, checked against the cipher folder) and joins them with addLink().
 */

/** The kernel's id of the mount's root. */
export const ROOT_ID = 1;

export interface Node {
  readonly id: number;
  /** undefined for the root and for a node whose name is gone (unlinked or replaced). */
  parent: Node | undefined;
  name: string;
  lookups: number;
  /** Where a node whose name is gone last was: for log lines of its open handles. */
  lastPath?: string;
  /** Open file handles: a node whose name is gone is still reached through them. */
  handles?: Set<number>;
  /** The cipher file's inode, for a file known to have several names (see byInode). */
  inode?: string;
  /** A hard-linked file's other names; when its own name goes, the first of them takes its place. */
  links?: { parent: Node; name: string }[];
}

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byName = new Map<string, Node>();
  /** Nodes of files with several names, by cipher inode: where a further name of one is found. */
  private readonly byInode = new Map<string, Node>();
  private nextId = ROOT_ID + 1;
  readonly root: Node = { id: ROOT_ID, parent: undefined, name: '', lookups: 1 };

  constructor() {
    this.byId.set(ROOT_ID, this.root);
  }

  private static key(parent: Node, name: string): string {
    return `${parent.id}/${name}`;
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** How many nodes are alive (the root included). */
  get size(): number {
    return this.byId.size;
  }

  /** The node's plaintext path, or undefined when its name (or an ancestor's) is gone. */
  path(node: Node): string | undefined {
    if (node === this.root) return '/';
    const parts: string[] = [];
    for (let n: Node | undefined = node; n !== this.root; n = n.parent) {
      if (!n) return undefined;
      parts.push(n.name);
    }
    return '/' + parts.reverse().join('/');
  }

  /** The node that parent/name has, if the kernel holds one. */
  named(parent: Node, name: string): Node | undefined {
    return this.byName.get(NodeTable.key(parent, name));
  }

  /** The node of a file with several names whose cipher inode is `inode`, while it has a name. */
  withInode(inode: string): Node | undefined {
    const node = this.byInode.get(inode);
    return node && this.byId.get(node.id) === node && this.path(node) !== undefined ? node : undefined;
  }

  /**
   * parent/name is one more name of `node`'s file (a hard link), with one more kernel lookup;
   * `inode` is the cipher inode they share. A name that already has a node of its own keeps it.
   */
  addLink(node: Node, parent: Node, name: string, inode: string): Node {
    const key = NodeTable.key(parent, name);
    const own = this.byName.get(key);
    if (own && own !== node) return this.remember(parent, name);
    if (!own) {
      (node.links ??= []).push({ parent, name });
      this.byName.set(key, node);
    }
    this.markLinked(node, inode);
    node.lookups++;
    return node;
  }

  /**
   * parent/name, one of a hard-linked node's names, was just found in the cipher folder: it
   * becomes the name the node is reached by, should its current one have gone behind the
   * mount's back (a sync client's unlink).
   */
  preferName(node: Node, parent: Node, name: string): void {
    const at = node.links?.findIndex((link) => link.parent === parent && link.name === name) ?? -1;
    if (at < 0 || !node.parent) return;
    node.links![at] = { parent: node.parent, name: node.name };
    node.parent = parent;
    node.name = name;
  }

  /** `node` is a file with several names, whose cipher inode is `inode`. */
  markLinked(node: Node, inode: string): void {
    if (node.inode !== undefined && node.inode !== inode && this.byInode.get(node.inode) === node) this.byInode.delete(node.inode);
    node.inode = inode;
    if (!this.withInode(inode)) this.byInode.set(inode, node);
  }

  childPath(parent: Node, name: string): string | undefined {
    const base = this.path(parent);
    return base === undefined ? undefined : base === '/' ? `/${name}` : `${base}/${name}`;
  }

  /** The node for parent/name, created if needed, with one more kernel lookup. */
  remember(parent: Node, name: string): Node {
    const key = NodeTable.key(parent, name);
    let node = this.byName.get(key);
    if (!node) {
      node = { id: this.nextId++, parent, name, lookups: 0 };
      this.byName.set(key, node);
      this.byId.set(node.id, node);
    }
    node.lookups++;
    return node;
  }

  /** The kernel dropped `lookups` of its references; at none left the node is gone. */
  forget(id: number, lookups: number): void {
    const node = this.byId.get(id);
    if (!node || node === this.root) return;
    node.lookups -= lookups;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    if (node.parent && this.byName.get(NodeTable.key(node.parent, node.name)) === node) {
      this.byName.delete(NodeTable.key(node.parent, node.name));
    }
    for (const link of node.links ?? []) {
      if (this.byName.get(NodeTable.key(link.parent, link.name)) === node) this.byName.delete(NodeTable.key(link.parent, link.name));
    }
    if (node.inode !== undefined && this.byInode.get(node.inode) === node) this.byInode.delete(node.inode);
  }

  /** parent/name no longer exists: its node (if any) keeps serving open handles only. */
  detach(parent: Node, name: string): void {
    const key = NodeTable.key(parent, name);
    const node = this.byName.get(key);
    if (!node) return;
    this.byName.delete(key);
    if (this.dropLink(node, parent, name)) return;
    // Its own name went: another name of a hard-linked file takes its place.
    const next = node.links?.shift();
    if (next) {
      node.parent = next.parent;
      node.name = next.name;
      return;
    }
    node.lastPath = this.path(node);
    node.parent = undefined;
    if (node.inode !== undefined && this.byInode.get(node.inode) === node) this.byInode.delete(node.inode);
  }

  /** Removes parent/name from the node's further names; false when it is not one of them. */
  private dropLink(node: Node, parent: Node, name: string): boolean {
    const at = node.links?.findIndex((link) => link.parent === parent && link.name === name) ?? -1;
    if (at < 0) return false;
    node.links!.splice(at, 1);
    return true;
  }

  /** parent/name was renamed to newParent/newName (replacing whatever was there). */
  move(parent: Node, name: string, newParent: Node, newName: string): void {
    this.detach(newParent, newName);
    const key = NodeTable.key(parent, name);
    const node = this.byName.get(key);
    if (!node) return;
    this.byName.delete(key);
    const link = node.links?.find((l) => l.parent === parent && l.name === name);
    if (link) {
      link.parent = newParent;
      link.name = newName;
    } else {
      node.parent = newParent;
      node.name = newName;
    }
    this.byName.set(NodeTable.key(newParent, newName), node);
  }

  /** parent/name and newParent/newName swapped places (renameat2 RENAME_EXCHANGE). */
  exchange(parent: Node, name: string, newParent: Node, newName: string): void {
    const key = NodeTable.key(parent, name);
    const newKey = NodeTable.key(newParent, newName);
    const a = this.byName.get(key);
    const b = this.byName.get(newKey);
    this.byName.delete(key);
    this.byName.delete(newKey);
    if (a) {
      a.parent = newParent;
      a.name = newName;
      this.byName.set(newKey, a);
    }
    if (b) {
      b.parent = parent;
      b.name = name;
      this.byName.set(key, b);
    }
  }

  opened(node: Node, fh: number): void {
    (node.handles ??= new Set()).add(fh);
  }

  closed(node: Node, fh: number): void {
    node.handles?.delete(fh);
  }

  /** Any open handle of the node: how fstat() reaches a file whose name is gone. */
  anyHandle(node: Node): number | undefined {
    return node.handles?.values().next().value;
  }

  /** A name for log lines of a handle operation, also for a node whose name is gone. */
  describe(node: Node): string {
    return this.path(node) ?? node.lastPath ?? '(deleted)';
  }
}
