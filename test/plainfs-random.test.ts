/**
 * The randomized operation model of the mount suite (test/fsmodel.ts, same generator) run
 * against PlainFs in this process, without FUSE: thousands of steps (three seeded runs) on a
 * vault of small chunks, so that files span several chunks and writes cross their boundaries.
 * Without the kernel's caches in between nothing is exempt: sizes, link counts and handle
 * reads are compared always; file contents every few steps and at the end.
 *
 * SEALFS_RANDOM_SEED replays a run (the runs use it and the next seeds); SEALFS_RANDOM_STEPS sets
 * the steps of each run; SEALFS_RANDOM_LOG how many operations a failure shows.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateMasterKey } from '../src/crypto/keyfile.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault } from '../src/vault/vault.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';
import { EVERY_KIND, folderTree, plainFsTree, runModel, sizesFor } from './fsmodel.js';

const SEED = Number(process.env.SEALFS_RANDOM_SEED ?? 0x5ea1f5);
/**
 * Several runs of a fresh tree rather than one long one: the tree grows as a run goes on, and
 * every step compares all of it, so one long run would cost the square of its length.
 */
const RUNS = 3;
const STEPS = Number(process.env.SEALFS_RANDOM_STEPS ?? 1000);
const CHUNK = 4096;
const CONTENTS_EVERY = 10;

let dir: string | undefined;
let fs: PlainFs | undefined;

afterEach(async () => {
  await fs?.releaseAll();
  fs = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('randomized operations: PlainFs (no FUSE) behaves like a plain folder', () => {
  it.each(Array.from({ length: RUNS }, (_, i) => SEED + i))(`${STEPS} random steps (seed %i)`, { timeout: 120_000 }, async (seed) => {
    dir = await mkdtemp(join(tmpdir(), 'sealfs-plainfs-random-'));
    const cipher = join(dir, 'cipher');
    const plain = join(dir, 'plain');
    await mkdir(cipher);
    await mkdir(plain);
    const key = generateMasterKey();
    await writeVaultFile(cipher, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: CHUNK, maxNameLength: 255 }), key);
    fs = new PlainFs(await openVault(cipher, key, { backend: 'node' }));
    await fs.mkdir('/work', 0o755);
    const run = await runModel({
      seed,
      steps: STEPS,
      sizes: sizesFor(CHUNK),
      subject: plainFsTree(fs, '/work'),
      reference: folderTree(plain),
      attrSettleMs: 0,
      contentsEvery: CONTENTS_EVERY,
      logLines: Number(process.env.SEALFS_RANDOM_LOG ?? 12),
    });
    console.log(`plainfs-random: seed ${seed}, ${run.operations} operations in ${run.seconds.toFixed(1)} s: ${[...run.kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const kind of EVERY_KIND) expect(run.kinds.get(kind) ?? 0, kind).toBeGreaterThan(0);
  });
});
