/**
 * SealedFile on a store that runs out of room, and the state a killed writer leaves (issue 12
 * item 4), in process: every state of the store between two of its calls must be a valid
 * sealed file (a server killed between system calls leaves one of them), a write the disk
 * cannot take leaves the file as it was, and with fallocate (ByteStore.allocate) the write
 * that needs room is refused before anything is gathered. And the confined call that takes the
 * room (CipherIo.reserve): on a cipher file's descriptor only.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cipherIoFor } from '../src/vault/cipherio.js';
import { fsatAddon } from '../src/vault/fsat.js';
import { contentContext } from '../src/crypto/context.js';
import { sealedSize } from '../src/crypto/geometry.js';
import { decrypt, generateMasterKey, MemoryStore, SealedFile } from '../src/index.js';
import { expectBytes, pattern } from './helpers.js';

const KEY = generateMasterKey();
const C = 4096;
const ctx = contentContext(KEY, { chunkSize: C });
const MiB = 1024 * 1024;

function enospc(): NodeJS.ErrnoException {
  const err = new Error('ENOSPC: no space left on device, write') as NodeJS.ErrnoException;
  err.code = 'ENOSPC';
  return err;
}

/**
 * A disk of `capacity` bytes: a write beyond it stores what fits, then fails with ENOSPC (as
 * write(2) does: a short write, then the error). Every state after a call is kept.
 */
class SmallDisk extends MemoryStore {
  readonly states: Uint8Array[] = [];
  constructor(public capacity = Infinity) {
    super();
  }
  override async write(source: Uint8Array, position: number): Promise<void> {
    const room = Math.max(0, this.capacity - position);
    if (room < source.length) {
      if (room > 0) await super.write(source.subarray(0, room), position);
      this.states.push(this.bytes().slice());
      throw enospc();
    }
    await super.write(source, position);
    this.states.push(this.bytes().slice());
  }
  override async truncate(size: number): Promise<void> {
    await super.truncate(size);
    this.states.push(this.bytes().slice());
  }
}

/** SmallDisk with fallocate: room beyond `capacity` is refused before anything is written. */
class AllocatingDisk extends SmallDisk {
  allocations = 0;
  async allocate(offset: number, length: number): Promise<void> {
    this.allocations++;
    if (offset + length > this.capacity) throw enospc();
  }
}

async function fileWith(store: SmallDisk, data: Uint8Array): Promise<SealedFile> {
  const file = await SealedFile.create(store, ctx);
  await file.write(0, data);
  await file.flush();
  store.states.length = 0;
  return file;
}

describe('every state between two store calls is a valid file', () => {
  it.each([
    ['a write growing the file by 9 MiB (three batches)', async (f: SealedFile) => f.write(100, pattern(9 * MiB, 3))],
    ['a 1-byte write 10 MiB past the end', async (f: SealedFile) => f.write(10 * MiB, Uint8Array.of(1))],
    ['extending by truncate to 10 MiB', async (f: SealedFile) => f.truncate(10 * MiB)],
  ] as const)('%s', async (_what, grow) => {
    const store = new SmallDisk();
    const old = pattern(C + 300, 1);
    const file = await fileWith(store, old);
    await grow(file);
    await file.flush();
    expect(store.states.length).toBeGreaterThan(2);
    let last = 0;
    for (const state of store.states) {
      // Valid (decrypt verifies every chunk and the final flag), and it only grows.
      const plain = decrypt(state, KEY);
      expect(plain.length).toBeGreaterThanOrEqual(last);
      expectBytes(plain.subarray(0, 100), old.subarray(0, 100));
      last = plain.length;
    }
  });
});

describe('a disk without room', () => {
  it('an append the disk cannot take fails and leaves the file as it was (no fallocate: the failed step is undone)', async () => {
    const store = new SmallDisk();
    const old = pattern(MiB + 777, 2);
    const file = await fileWith(store, old);
    store.capacity = sealedSize(old.length, C) + 100_000;
    await file.write(old.length, pattern(MiB, 4));
    await expect(file.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    expectBytes(decrypt(store.bytes(), KEY), old);
    expect(file.size).toBe(old.length);
    expectBytes(await file.read(0, file.size), old);
    // Room again: the file takes writes as before.
    store.capacity = Infinity;
    await file.write(old.length, Uint8Array.of(9));
    await file.flush();
    expect(decrypt(store.bytes(), KEY).length).toBe(old.length + 1);
  });

  it('a write spanning batches keeps the steps that fit, and the file stays valid', async () => {
    const store = new SmallDisk();
    const old = pattern(5000, 2);
    const file = await fileWith(store, old);
    store.capacity = sealedSize(6 * MiB, C);
    const big = pattern(9 * MiB, 5);
    await expect(file.write(0, big)).rejects.toMatchObject({ code: 'ENOSPC' });
    const plain = decrypt(store.bytes(), KEY);
    expect(plain.length).toBeGreaterThanOrEqual(old.length);
    expectBytes(plain, big.subarray(0, plain.length));
    expectBytes(await file.read(0, file.size), plain);
  });

  it('with fallocate, write() itself fails with ENOSPC before anything is gathered or written', async () => {
    const store = new AllocatingDisk();
    const old = pattern(MiB, 2);
    const file = await fileWith(store, old);
    store.capacity = sealedSize(old.length, C) + 1000;
    // A small write that fits (the last chunk's room) is taken…
    await file.write(old.length, pattern(500, 7));
    // …the next one needs room that is not there: refused at once.
    await expect(file.write(old.length + 500, pattern(128 * 1024, 8))).rejects.toMatchObject({ code: 'ENOSPC' });
    await file.flush();
    expectBytes(decrypt(store.bytes(), KEY), new Uint8Array([...old, ...pattern(500, 7)]));
    // An overwrite in place needs no room.
    await file.write(10, pattern(C * 3, 9));
    await file.flush();
    expect(decrypt(store.bytes(), KEY).length).toBe(MiB + 500);
    expect(store.allocations).toBeGreaterThan(0);
  });
});

describe.skipIf(!fsatAddon())('CipherIo.reserve (fallocate FALLOC_FL_KEEP_SIZE through the confined calls)', () => {
  it.each([true, false])('direct %s: takes room without changing the size; refuses a descriptor that is not a regular file', async (direct) => {
    const dir = await mkdtemp(join(tmpdir(), 'sealfs-reserve-'));
    try {
      const io = cipherIoFor({ directIo: direct }, dir);
      const fd = await io.open(join(dir, 'f'), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.writeSync(fd, Buffer.alloc(100, 1));
      await io.reserve(fd, 100, 4 * MiB);
      const st = fs.fstatSync(fd);
      expect(st.size).toBe(100);
      expect(st.blocks * 512).toBeGreaterThanOrEqual(4 * MiB);
      fs.closeSync(fd);
      // A folder's descriptor, a FIFO's, one not open: nothing is allocated, an error is told.
      const folder = fs.openSync(dir, 'r');
      await expect(io.reserve(folder, 0, 4096)).rejects.toMatchObject({ code: 'EBADF' });
      fs.closeSync(folder);
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      const fifo = fs.openSync(join(dir, 'fifo'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      await expect(io.reserve(fifo, 0, 4096)).rejects.toMatchObject({ code: 'EBADF' });
      fs.closeSync(fifo);
      await expect(io.reserve(1 << 20, 0, 4096)).rejects.toMatchObject({ code: 'EBADF' });
      const other = fs.openSync(join(dir, 'g'), 'w+');
      await expect(io.reserve(other, -1, 4096)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(io.reserve(other, 0, 0)).rejects.toMatchObject({ code: 'EINVAL' });
      fs.closeSync(other);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
