import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';

/**
 * The file-system calls made on the cipher directory. By default they are Node's
 * asynchronous calls. The mount server uses direct calls (MountSettings.directIo: synchronous
 * system calls, answered as settled promises): each asynchronous call pays a round trip through libuv's
 * thread pool, which costs far more than a metadata call on a local disk, and a FUSE request
 * waits for several of them in a row. Direct calls are safe there because the cipher
 * directory is never inside the mount that the same process serves (the mount refuses it);
 * fsync stays asynchronous, as it may take long.
 */
export interface CipherIo {
  readonly direct: boolean;
  lstat(path: string): Promise<fs.Stats>;
  readdir(path: string): Promise<string[]>;
  readdirTypes(path: string): Promise<fs.Dirent[]>;
  writeText(path: string, text: string): Promise<void>;
  open(path: string, flags: number, mode?: number): Promise<number>;
  fstat(fd: number): Promise<fs.Stats>;
  close(fd: number): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  chmod(path: string, mode: number): Promise<void>;
  lchown(path: string, uid: number, gid: number): Promise<void>;
  lutimes(path: string, atime: Date | number, mtime: Date | number): Promise<void>;
  statfs(path: string): Promise<fs.StatsFs>;
}

export const queuedCipherIo: CipherIo = {
  direct: false,
  lstat: (p) => fsp.lstat(p),
  readdir: (p) => fsp.readdir(p),
  readdirTypes: (p) => fsp.readdir(p, { withFileTypes: true }),
  writeText: (p, t) => fsp.writeFile(p, t),
  open: (p, flags, mode) => new Promise((resolve, reject) => fs.open(p, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)))),
  fstat: (fd) => new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st)))),
  close: (fd) => new Promise((resolve) => fs.close(fd, () => resolve())),
  mkdir: async (p, mode) => void (await fsp.mkdir(p, mode)),
  rmdir: (p) => fsp.rmdir(p),
  remove: (p) => fsp.rm(p, { recursive: true, force: true }),
  rename: (a, b) => fsp.rename(a, b),
  unlink: (p) => fsp.unlink(p),
  link: (a, b) => fsp.link(a, b),
  symlink: (t, p) => fsp.symlink(t, p),
  readlink: (p) => fsp.readlink(p),
  chmod: (p, m) => fsp.chmod(p, m),
  lchown: (p, u, g) => fsp.lchown(p, u, g),
  lutimes: (p, a, m) => fsp.lutimes(p, a, m),
  statfs: (p) => fsp.statfs(p),
};

const directCipherIo: CipherIo = {
  direct: true,
  lstat: async (p) => fs.lstatSync(p),
  readdir: async (p) => fs.readdirSync(p),
  readdirTypes: async (p) => fs.readdirSync(p, { withFileTypes: true }),
  writeText: async (p, t) => fs.writeFileSync(p, t),
  open: async (p, flags, mode) => fs.openSync(p, flags, mode),
  fstat: async (fd) => fs.fstatSync(fd),
  close: async (fd) => {
    try {
      fs.closeSync(fd);
    } catch {
      // Closing is best effort: the descriptor is gone either way.
    }
  },
  mkdir: async (p, mode) => void fs.mkdirSync(p, mode),
  rmdir: async (p) => fs.rmdirSync(p),
  remove: async (p) => fs.rmSync(p, { recursive: true, force: true }),
  rename: async (a, b) => fs.renameSync(a, b),
  unlink: async (p) => fs.unlinkSync(p),
  link: async (a, b) => fs.linkSync(a, b),
  symlink: async (t, p) => fs.symlinkSync(t, p),
  readlink: async (p) => fs.readlinkSync(p),
  chmod: async (p, m) => fs.chmodSync(p, m),
  lchown: async (p, u, g) => fs.lchownSync(p, u, g),
  lutimes: async (p, a, m) => fs.lutimesSync(p, a, m),
  statfs: async (p) => fs.statfsSync(p),
};

/** The calls that `settings.directIo` asks for. */
export function cipherIoFor(settings: { readonly directIo: boolean }): CipherIo {
  return settings.directIo ? directCipherIo : queuedCipherIo;
}
