/** src/vault/paths.ts: isInside as the callers use it, the state folder, the vault-id shape. */
import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLoosely } from '../src/vault/keystore.js';
import { isInside, isVaultId, stateDir, statusDirs } from '../src/vault/paths.js';

describe('isInside', () => {
  it('is true for the folder itself and anything below it', () => {
    expect(isInside('/a/b', '/a/b')).toBe(true);
    expect(isInside('/a/b/c', '/a/b')).toBe(true);
    expect(isInside('/a/b/c/d', '/a/b')).toBe(true);
    expect(isInside('/anything', '/')).toBe(true);
  });

  it('treats a child named `..x` (or `...`) as inside, and only a whole `..` as leading out', () => {
    expect(isInside('/a/b/..x', '/a/b')).toBe(true);
    expect(isInside('/a/b/...', '/a/b')).toBe(true);
    expect(isInside('/a/b/..x/c', '/a/b')).toBe(true);
    expect(isInside('/a', '/a/b')).toBe(false);
    expect(isInside('/a/c', '/a/b')).toBe(false);
    expect(isInside('/a/..x', '/a/b')).toBe(false);
  });

  it('does not take a sibling with a common prefix for a child', () => {
    expect(isInside('/a/bc', '/a/b')).toBe(false);
    expect(isInside('/a/b-c/d', '/a/b')).toBe(false);
  });

  it('ignores `.` components and trailing slashes', () => {
    expect(isInside('/a/b/./c/', '/a/b/')).toBe(true);
    expect(isInside('/a/b/', '/a/b')).toBe(true);
    expect(isInside('/a/b', '/a/b/.')).toBe(true);
    expect(isInside('/a/b/c/..', '/a/b')).toBe(true);
    expect(isInside('/a/b/../c/', '/a/b/')).toBe(false);
  });

  describe('with symlinks resolved as the callers do (realpath, resolveLoosely)', () => {
    let root: string;
    beforeAll(async () => {
      root = await realpath(await mkdtemp(join(tmpdir(), 'sealfs-paths-')));
      await mkdir(join(root, 'vault'));
      await mkdir(join(root, 'elsewhere'));
      await symlink(join(root, 'vault'), join(root, 'link-to-vault'));
      await symlink(join(root, 'elsewhere'), join(root, 'vault', 'link-out'));
    });
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it('sees a path through a link to the folder as inside it, even where it does not exist yet', async () => {
      const vault = await realpath(join(root, 'vault'));
      expect(isInside(await resolveLoosely(join(root, 'link-to-vault', 'keys')), vault)).toBe(true);
      expect(isInside(await resolveLoosely(join(root, 'link-to-vault', 'new', 'deeper')), vault)).toBe(true);
      expect(isInside(join(root, 'link-to-vault', 'keys'), vault)).toBe(false); // unresolved, the link hides it
    });

    it('sees a path through a link leading out of the folder as outside it', async () => {
      const vault = await realpath(join(root, 'vault'));
      expect(isInside(await resolveLoosely(join(root, 'vault', 'link-out', 'keys')), vault)).toBe(false);
      expect(isInside(await resolveLoosely(join(root, 'vault', 'link-out', '..x')), vault)).toBe(false);
      expect(isInside(await resolveLoosely(join(root, 'vault', '..x')), vault)).toBe(true);
    });
  });
});

describe('stateDir', () => {
  it('is $XDG_STATE_HOME/sealfs, else ~/.local/state/sealfs; a relative XDG_STATE_HOME is ignored', () => {
    expect(stateDir({ XDG_STATE_HOME: '/x/state', HOME: '/home/alice' })).toBe('/x/state/sealfs');
    expect(stateDir({ HOME: '/home/alice' })).toBe('/home/alice/.local/state/sealfs');
    expect(stateDir({ XDG_STATE_HOME: 'relative/ignored', HOME: '/home/alice' })).toBe('/home/alice/.local/state/sealfs');
  });
});

describe('statusDirs', () => {
  it('the runtime folder ($XDG_RUNTIME_DIR, else /run/user/UID), then the state folder; relative values ignored', () => {
    expect(statusDirs({ XDG_RUNTIME_DIR: '/run/user/1000', HOME: '/home/alice' }, 1000)).toEqual(['/run/user/1000/sealfs', '/home/alice/.local/state/sealfs/mounts']);
    expect(statusDirs({ XDG_RUNTIME_DIR: '/tmp/rt', XDG_STATE_HOME: '/x/state', HOME: '/home/alice' }, 1000)).toEqual(['/tmp/rt/sealfs', '/run/user/1000/sealfs', '/x/state/sealfs/mounts']);
    expect(statusDirs({ XDG_RUNTIME_DIR: 'relative', HOME: '/home/alice' }, 1000)).toEqual(['/run/user/1000/sealfs', '/home/alice/.local/state/sealfs/mounts']);
  });
});

describe('isVaultId', () => {
  it('accepts only a lowercase UUID, which can never name another path', () => {
    expect(isVaultId('0b7d6c0e-8f5a-4c39-9a7e-2f0d7c1e5b42')).toBe(true);
    for (const bad of ['', '0B7D6C0E-8F5A-4C39-9A7E-2F0D7C1E5B42', '../0b7d6c0e-8f5a-4c39-9a7e-2f0d7c1e5b4', '0b7d6c0e-8f5a-4c39-9a7e-2f0d7c1e5b42\n', '0b7d6c0e8f5a4c399a7e2f0d7c1e5b42', '0b7d6c0e-8f5a-4c39-9a7e-2f0d7c1e5b42/x']) {
      expect(isVaultId(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});
