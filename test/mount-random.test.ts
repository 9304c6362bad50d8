/**
 * The randomized operation model (test/fsmodel.ts: seeded, reproducible) applied to a real
 * sealfs mount and to a plain folder side by side, compared after every step: the tree
 * (names and types), every file's size and content, symlink targets, and the result of
 * every operation (success or the same errno), with several handles open at once on both
 * sides (FileHandles of this process, kept open across steps, reading and writing). The same
 * model runs against PlainFs without the kernel, with many more steps, in
 * test/plainfs-random.test.ts; this suite keeps what needs the kernel in between (its
 * attribute and page caches, handles through it).
 *
 * Set SEALFS_RANDOM_SEED to replay a run (another seed: another run); a failure names the
 * seed, the step, the last operations (SEALFS_RANDOM_LOG of them, default 12) and the end
 * of the server's log.
 *
 * One documented FUSE effect is allowed for, and nothing else: a hard link is a separate
 * kernel inode, whose cached attributes (and so its size) may lag by the attribute timeout
 * after a change made through another name (the mount runs with short cache times,
 * --cache-time, as this test is not about their default): such names are compared once that
 * time passed (and everything is compared again at the end). An unlinked file that is still open
 * leaves nothing behind: its folder can be removed, as on a local disk.
 * Not compared: what a handle reads when its file has other names (hard links): the kernel
 * may serve pages it cached through that handle's name after a change through another name
 * (the known limitation tested in mount-faults).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVERY_KIND, folderTree, runModel, sizesFor } from './fsmodel.js';
import { FUSE_PROBLEM, SHORT_CACHE_ARGS, SHORT_CACHE_MS, useMountHarness } from './mount-helpers.js';

const h = useMountHarness('mount-random');
if (FUSE_PROBLEM) console.warn(`mount-random: skipped: ${FUSE_PROBLEM}`);

const SEED = Number(process.env.SEALFS_RANDOM_SEED ?? 0x5ea1f5);
const STEPS = 300;
/** The vault's chunk size (sealfs init's default). */
const CHUNK = 64 * 1024;
/** Attribute timeout of the mount (--cache-time: SHORT_CACHE_MS) plus a margin. */
const ATTR_SETTLE_MS = SHORT_CACHE_MS + 300;

describe.skipIf(FUSE_PROBLEM !== undefined)('randomized operations: a sealfs mount behaves like a plain folder', () => {
  it(`${STEPS} random steps, compared after every one (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const v = await h.vault();
    await h.mountOk(v, { args: [...SHORT_CACHE_ARGS] });
    const roots = { mount: join(v.mnt, 'work'), plain: join(v.dir, 'plain') };
    await mkdir(roots.mount);
    await mkdir(roots.plain);
    let run;
    try {
      run = await runModel({
        seed: SEED,
        steps: STEPS,
        sizes: sizesFor(CHUNK),
        subject: folderTree(roots.mount),
        reference: folderTree(roots.plain),
        attrSettleMs: ATTR_SETTLE_MS,
        contentsEvery: 1,
        logLines: Number(process.env.SEALFS_RANDOM_LOG ?? 12),
      });
    } catch (err) {
      // The server's side of the story.
      const lines = (await h.logLines(v)).slice(-15).join('\n');
      throw new Error(`${(err as Error).message}\nserver log (last lines):\n${lines}`);
    }
    console.log(`mount-random: seed ${SEED}, ${run.operations} operations in ${run.seconds.toFixed(1)} s: ${[...run.kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    // Sanity: the run really did a bit of everything.
    for (const kind of EVERY_KIND) expect(run.kinds.get(kind) ?? 0, kind).toBeGreaterThan(0);
    await h.unmountOk(v);
  });
});
