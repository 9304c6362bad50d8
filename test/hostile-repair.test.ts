/**
 * `sealfs repair` against a hostile provider: between the scrub and the writes (here: while
 * rclone fetches the backup copies, repair's own window) the provider swaps folders of the
 * vault for symbolic links to decoy folders outside it, and a damaged file for a link to a
 * decoy file. Repair must neither write, move nor delete anything through those links: the
 * decoy tree is unchanged (checksums before and after), the swapped paths are reported as not
 * repaired (exit 9), the file swapped for a link is replaced inside the vault, and a file
 * swapped for a FIFO is reported without being opened.
 *
 * Likewise `sealfs restore` into an existing folder that the provider swaps for a link to a
 * decoy folder while the backup downloads: nothing is moved into the decoy.
 *
 * Real rclone with a local remote; the provider acts from a wrapper that runs just before the
 * real rclone downloads.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { cipherRel, flipByte, keyArgs, LONG_DIR, makeVaultIn, readsBackExactly, runCli } from './helpers-rclone.js';

const STORED = 65_536 + 28;
const chunkAt = (i: number) => 24 + i * STORED;
/** The repair takes about a second here. */
const REPAIR_LIMIT_MS = 30_000;

let root: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-hostile-repair-'));
  await mkdir(join(root, 'tmp'));
  const bin = join(root, 'bin');
  await mkdir(bin);
  const real = execFileSync('sh', ['-c', 'command -v rclone'], { encoding: 'utf8' }).trim();
  // The provider's move: the script named by $DURING_FETCH runs once, right before the
  // real rclone runs with an argument matching $DURING_FETCH_ON (repair's download of the
  // copies: --files-from; restore's download into its staging folder).
  await writeFile(
    join(bin, 'rclone'),
    `#!/bin/sh\nfor a in "$@"; do\n  case "$a" in $DURING_FETCH_ON) if [ -f "$DURING_FETCH" ]; then sh -e "$DURING_FETCH" || exit 99; rm -f "$DURING_FETCH"; fi;; esac\ndone\nexec '${real}' "$@"\n`,
  );
  await chmod(join(bin, 'rclone'), 0o755);
  env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'home', '.config'),
    XDG_STATE_HOME: join(root, 'state'),
    TMPDIR: join(root, 'tmp'),
    RCLONE_CONFIG: join(root, 'no-rclone.conf'),
    DURING_FETCH: join(root, 'during-fetch.sh'),
    DURING_FETCH_ON: '--files-from',
  };
}, 60_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
}, 30_000);

/** Type, mode and contents (or link target) of every entry under `dir`. */
async function digest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(at: string): Promise<void> {
    for (const name of (await readdir(at)).sort()) {
      const path = join(at, name);
      const st = await lstat(path);
      const rel = relative(dir, path);
      if (st.isDirectory()) {
        out[rel] = `dir ${st.mode.toString(8)}`;
        await walk(path);
      } else if (st.isSymbolicLink()) {
        out[rel] = `link ${await readlink(path)}`;
      } else {
        out[rel] = `file ${st.mode.toString(8)} ${st.mtimeMs} ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
      }
    }
  }
  await walk(dir);
  return out;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface Outcome {
  kind: string;
  cipherPath: string;
  action: string;
  keptAt: string | null;
}

describe('repair with folders swapped for links to decoys (real rclone)', { timeout: 120_000 }, () => {
  it('writes, moves and deletes nothing through the links; reports the swapped paths (exit 9)', async () => {
    const v = await makeVaultIn(root, 0);
    const remote = join(root, 'backup');
    expect((await runCli(['backup', v.cipherDir, remote], env)).code).toBe(EXIT.OK);

    const at = (r: string) => join(v.cipherDir, r);
    const rels = {
      docs: await cipherRel(v, '/docs'),
      big: await cipherRel(v, '/docs/big.bin'),
      longDir: await cipherRel(v, `/${LONG_DIR}`),
      plus: await cipherRel(v, '/chunk-plus.bin'),
      minus: await cipherRel(v, '/chunk-minus.bin'),
    };
    // Damage the scrub will find: a flipped bit in docs/big.bin (repaired by replacing it),
    // an orphan sidecar in the long-named folder (repaired by setting it aside), a flipped
    // bit in /chunk-plus.bin and in /chunk-minus.bin.
    await flipByte(at(rels.big), chunkAt(2) + 100);
    await flipByte(at(rels.plus), chunkAt(1) + 10);
    await flipByte(at(rels.minus), chunkAt(0) + 10);
    const orphan = `${rels.longDir}/${basename(rels.longDir).replace(/\.sfl$/, '.sfn')}`;
    await writeFile(at(orphan), 'a sidecar whose entry is gone');

    // Decoys outside the vault, looking like the folders they replace.
    const decoys = join(root, 'decoys');
    await mkdir(decoys);
    await cp(at(rels.docs), join(decoys, 'docs'), { recursive: true, preserveTimestamps: true });
    await cp(at(rels.longDir), join(decoys, 'long'), { recursive: true, preserveTimestamps: true });
    await cp(at(rels.plus), join(decoys, 'plus'), { preserveTimestamps: true });
    await writeFile(join(decoys, 'precious.txt'), 'nothing may touch this');
    const before = await digest(decoys);

    const moved = join(root, 'moved-away');
    await mkdir(moved);
    await writeFile(
      env.DURING_FETCH!,
      [
        `mv ${sq(at(rels.docs))} ${sq(join(moved, 'docs'))}`,
        `ln -s ${sq(join(decoys, 'docs'))} ${sq(at(rels.docs))}`,
        `mv ${sq(at(rels.longDir))} ${sq(join(moved, 'long'))}`,
        `ln -s ${sq(join(decoys, 'long'))} ${sq(at(rels.longDir))}`,
        `rm ${sq(at(rels.plus))}`,
        `ln -s ${sq(join(decoys, 'plus'))} ${sq(at(rels.plus))}`,
        // A FIFO in place of a damaged file: never opened (it would block), never replaced.
        `rm ${sq(at(rels.minus))}`,
        `mkfifo ${sq(at(rels.minus))}`,
      ].join('\n') + '\n',
    );

    // Bounded: a repair that opens the FIFO blocks forever.
    let timer: NodeJS.Timeout | undefined;
    const repair = await Promise.race([
      runCli(['repair', v.cipherDir, '--from', remote, ...keyArgs(v), '--json'], env),
      new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`repair did not finish within ${REPAIR_LIMIT_MS} ms`)), REPAIR_LIMIT_MS))),
    ]).finally(() => clearTimeout(timer));
    expect(await lstat(env.DURING_FETCH!).catch(() => 'ran')).toBe('ran'); // the provider did act
    expect(await digest(decoys)).toEqual(before);
    expect(repair.code).toBe(EXIT.PROBLEMS);
    const report = JSON.parse(repair.stdout) as { repaired: Outcome[]; notRepaired: Outcome[]; problems: { kind: string; cipherPath: string }[] };

    // The file under the swapped docs folder and the orphan under the swapped long-named
    // folder: not repaired, with the path and the reason.
    const notRepaired = Object.fromEntries(report.notRepaired.map((o) => [o.cipherPath, o]));
    expect(Object.keys(notRepaired).sort()).toEqual([at(rels.big), at(orphan), at(rels.minus)].sort());
    expect(notRepaired[at(rels.minus)]!.action).toBe(`could not be put in place: ${at(rels.minus)} is a FIFO now, not what the scrub checked; nothing was changed`);
    expect((await lstat(at(rels.minus))).isFIFO()).toBe(true);
    expect(notRepaired[at(rels.big)]!.action).toContain(`could not be put in place: ${at(rels.big)}: a folder on the way is a symbolic link`);
    expect(notRepaired[at(orphan)]!.action).toContain(`could not be moved out of the vault: ${at(orphan)}: a folder on the way is a symbolic link`);
    expect(notRepaired[at(rels.big)]!.keptAt).toBeNull();

    // The file swapped for a link: the link (not its target) is kept aside and replaced in
    // the vault by the verified copy.
    expect(report.repaired.map((o) => [o.kind, o.cipherPath])).toEqual([['corrupt-chunk', at(rels.plus)]]);
    const kept = report.repaired[0]!.keptAt!;
    expect(await readlink(kept)).toBe(join(decoys, 'plus'));
    expect((await lstat(at(rels.plus))).isFile()).toBe(true);

    // The scrub after the repair names the two links and the FIFO.
    expect(report.problems.filter((p) => p.kind === 'bad-symlink-target').map((p) => p.cipherPath).sort()).toEqual([at(rels.docs), at(rels.longDir)].sort());
    expect(report.problems.filter((p) => p.kind === 'unexpected-type').map((p) => p.cipherPath)).toEqual([at(rels.minus)]);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);

    // Once the provider's links are undone, the vault is as it was (the damage aside) and a
    // second repair fixes the rest.
    for (const [rel, name] of [[rels.docs, 'docs'], [rels.longDir, 'long']] as const) {
      await rm(at(rel));
      await cp(join(moved, name), at(rel), { recursive: true, preserveTimestamps: true });
    }
    await rm(at(rels.minus));
    await writeFile(at(rels.minus), 'damaged again');
    const again = await runCli(['repair', v.cipherDir, '--from', remote, ...keyArgs(v), '--json'], env);
    expect(again.code).toBe(EXIT.OK);
    expect(await readsBackExactly(v)).toEqual([]);
    expect(await digest(decoys)).toEqual(before);
  });

  it('restore into an existing folder that becomes a link to a decoy during the download: nothing lands there (exit 3)', async () => {
    const v = await makeVaultIn(root, 1);
    const remote = join(root, 'backup-restore');
    expect((await runCli(['backup', v.cipherDir, remote], env)).code).toBe(EXIT.OK);
    const parent = join(root, 'sync');
    const target = join(parent, 'vault');
    await mkdir(join(target, '.stfolder'), { recursive: true });
    // An empty folder with a marker: what the re-check after the download accepts.
    const decoy = join(root, 'decoy-folder');
    await mkdir(join(decoy, '.stfolder'), { recursive: true });
    const before = await digest(decoy);
    await writeFile(env.DURING_FETCH!, `mv ${sq(target)} ${sq(join(root, 'moved-target'))}\nln -s ${sq(decoy)} ${sq(target)}\n`);

    const run = await runCli(['restore', remote, target, ...keyArgs(v)], { ...env, DURING_FETCH_ON: '*.sealfs-restore-*' });
    expect(await lstat(env.DURING_FETCH!).catch(() => 'ran')).toBe('ran');
    expect(await digest(decoy)).toEqual(before);
    expect(run.stderr).toBe(`sealfs: ${target}: it was replaced by a symbolic link or a non-folder during the restore; nothing more was moved into it\n`);
    expect(run.code).toBe(EXIT.IO);
    expect(await readdir(parent)).toEqual(['vault']); // the staging folder is gone
    expect(await readdir(join(root, 'moved-target'))).toEqual(['.stfolder']);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });
});
