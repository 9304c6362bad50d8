/**
 * The confined extended-attribute and space-reservation calls on the cipher folder
 * (src/vault/cipherio.ts getxattr/listxattr/setxattr/removexattr/reserve, native/sealfs_fsat.c):
 * a planted link, a folder swapped for a link, a FIFO or a path out of the vault never makes
 * them read or change the attributes of anything outside the vault, nor block; values and
 * lists are bounded; a reservation never changes a cipher file's size. For both resolvers
 * (openat2, and the component walk of kernels without it).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cipherIoFor, type CipherIo } from '../src/vault/cipherio.js';
import { fsatAddon } from '../src/vault/fsat.js';
import { ALLOW_NO_NATIVE } from './helpers.js';

const addon = fsatAddon();
if (!addon && !ALLOW_NO_NATIVE) throw new Error('the native addon is not built: the confined calls cannot be tested');

/** Every attribute (name=hex value) of a path, not following a link, read with python3 (Node has no xattr calls). */
function attrsOf(path: string): string {
  const script = 'import os,sys\np=sys.argv[1]\nprint(sorted((n, os.getxattr(p, n, follow_symlinks=False).hex()) for n in os.listxattr(p, follow_symlinks=False)))';
  return execFileSync('python3', ['-c', script, path], { encoding: 'utf8' });
}

let base: string;
let vault: string;
let decoy: string;

beforeEach(() => {
  base = fs.mkdtempSync(join(tmpdir(), 'sealfs-cipherio-xattr-'));
  vault = join(base, 'vault');
  decoy = join(base, 'decoy');
  fs.mkdirSync(join(decoy, 'sub'), { recursive: true });
  fs.writeFileSync(join(decoy, 'f0'), 'decoy\n');
  execFileSync('python3', ['-c', 'import os,sys\nfor p in sys.argv[1:]: os.setxattr(p, "user.sealfs.decoy", b"outside")', join(decoy, 'f0'), join(decoy, 'sub'), decoy]);
  fs.mkdirSync(join(vault, 'd'), { recursive: true });
  fs.writeFileSync(join(vault, 'd', 'file'), 'inside\n');
  fs.symlinkSync(decoy, join(vault, 'ld'));
  fs.symlinkSync(join(decoy, 'f0'), join(vault, 'lf'));
  fs.symlinkSync('../../decoy/sub', join(vault, 'd', 'up'));
  execFileSync('mkfifo', [join(vault, 'fifo')]);
});

afterEach(() => {
  addon?.fsatForceWalk(false);
  fs.rmSync(base, { recursive: true, force: true });
});
afterAll(() => addon?.fsatForceWalk(false));

const code = (p: Promise<unknown>) => p.then(() => 'ok', (err: NodeJS.ErrnoException) => err.code ?? String(err));
const snapshot = () => [decoy, join(decoy, 'f0'), join(decoy, 'sub')].map(attrsOf).join('');

describe.skipIf(!addon).each([false, true])('confined xattr calls (component walk: %s)', (walk) => {
  let io: CipherIo;
  beforeEach(() => {
    addon!.fsatForceWalk(walk);
    io = cipherIoFor({ directIo: true }, vault);
  });

  it('set, get, list and remove on a file, a folder and the vault root', async () => {
    for (const path of [join(vault, 'd', 'file'), join(vault, 'd'), vault]) {
      await io.setxattr(path, 'user.sealfs.x', Buffer.from('v1'), 'create');
      expect(await code(io.setxattr(path, 'user.sealfs.x', Buffer.from('v2'), 'create'))).toBe('EEXIST');
      expect(await code(io.setxattr(path, 'user.sealfs.y', Buffer.from('v2'), 'replace'))).toBe('ENODATA');
      await io.setxattr(path, 'user.sealfs.x', Buffer.from('v3'), 'replace');
      expect((await io.getxattr(path, 'user.sealfs.x')).toString()).toBe('v3');
      expect((await io.listxattr(path)).map(String)).toContain('user.sealfs.x');
      await io.removexattr(path, 'user.sealfs.x');
      expect(await code(io.getxattr(path, 'user.sealfs.x'))).toBe('ENODATA');
    }
  });

  it('never follows a planted link (to a file, a folder, or on the way) nor reaches out of the vault; a FIFO is EIO without blocking', async () => {
    const before = snapshot();
    const planted = [join(vault, 'lf'), join(vault, 'ld'), join(vault, 'ld', 'f0'), join(vault, 'ld', 'sub'), join(vault, 'd', 'up'), join(vault, 'd', 'up', 'x')];
    for (const path of planted) {
      expect(await code(io.getxattr(path, 'user.sealfs.decoy')), path).toMatch(/^(ELOOP|ENOENT)$/);
      expect(await code(io.listxattr(path)), path).toMatch(/^(ELOOP|ENOENT)$/);
      expect(await code(io.setxattr(path, 'user.sealfs.decoy', Buffer.from('changed'), 'set')), path).toMatch(/^(ELOOP|ENOENT)$/);
      expect(await code(io.removexattr(path, 'user.sealfs.decoy')), path).toMatch(/^(ELOOP|ENOENT)$/);
    }
    for (const path of [join(vault, '..', 'decoy', 'f0'), join(decoy, 'f0'), join(vault, 'd', '..', '..', 'decoy')]) {
      expect(await code(io.getxattr(path, 'user.sealfs.decoy')), path).toMatch(/^(EXDEV|EINVAL)$/);
      expect(await code(io.setxattr(path, 'user.sealfs.decoy', Buffer.from('changed'), 'set')), path).toMatch(/^(EXDEV|EINVAL)$/);
    }
    expect(await code(io.getxattr(join(vault, 'fifo'), 'user.sealfs.x'))).toBe('EIO');
    expect(await code(io.setxattr(join(vault, 'fifo'), 'user.sealfs.x', Buffer.from('v'), 'set'))).toBe('EIO');
    expect(snapshot()).toBe(before);
  });

  it('reads at most 64 KiB of a value or list; reserving space never changes a cipher file\'s size', async () => {
    const path = join(vault, 'd', 'file');
    // ext4 keeps a file's attributes in one block: many names fill the list instead.
    for (let i = 0; i < 40; i++) await io.setxattr(path, `user.sealfs.${'n'.repeat(60)}${i}`, Buffer.alloc(8), 'set').catch(() => undefined);
    const names = await io.listxattr(path);
    expect(names.length).toBeGreaterThan(10);
    expect(names.reduce((n, name) => n + name.length + 1, 0)).toBeLessThanOrEqual(65_536);
    const fd = await io.open(path, fs.constants.O_RDWR);
    try {
      const before = fs.fstatSync(fd);
      await io.reserve(fd, 0, 4 << 20);
      const after = fs.fstatSync(fd);
      expect(after.size).toBe(before.size);
      expect(after.blocks).toBeGreaterThan(before.blocks + 4000);
      expect(fs.readFileSync(path, 'utf8')).toBe('inside\n');
    } finally {
      await io.close(fd);
    }
  });
});
