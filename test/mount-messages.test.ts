/**
 * Messages about live mounts, pinned with their exit codes (issue 13 §5): the hints a user
 * copies and pastes are quoted for the shell (and work when pasted), an unmount of the vault
 * folder names where it is mounted, and "busy" names the mount nested inside.
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { FUSE_PROBLEM, isMounted, useMountHarness } from './mount-helpers.js';

if (FUSE_PROBLEM) console.warn(`mount-messages: skipped: ${FUSE_PROBLEM}`);

const h = useMountHarness('mount-messages');

/** Runs a hint as the user would paste it into a shell, with `sealfs` standing for the built command. */
function paste(hint: string): { status: number | null; stderr: string } {
  const result = spawnSync('/bin/sh', ['-c', `sealfs() { "${process.execPath}" "${h.cli}" "$@"; }; ${hint}`], { encoding: 'utf8', env: h.env(), timeout: 60_000 });
  return { status: result.status, stderr: result.stderr };
}

describe.skipIf(FUSE_PROBLEM !== undefined)('messages about mounts', { timeout: 90_000 }, () => {
  it('a mount point with a space and a quote: every unmount hint is quoted, and pasting it unmounts', async () => {
    const v = await h.vault();
    const mnt = join(v.dir, "it's my drive");
    await mkdir(mnt);
    const m = await h.mount(v, { mnt });
    expect(m.code, m.stderr).toBe(EXIT.OK);
    const quoted = `'${mnt.replace(/'/g, `'\\''`)}'`;
    expect(m.stderr).toContain(`Unmount with: sealfs unmount ${quoted}\n`);

    const again = await h.sealfs(['mount', v.cipher, mnt, '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expect(again.code).toBe(EXIT.MOUNT);
    expect(again.stderr).toContain(`is already mounted (sealfs, ${v.cipher}); unmount it first with \`sealfs unmount ${quoted}\``);

    // The vault folder given to unmount: where it is mounted, and the command for that.
    const wrong = await h.sealfs(['unmount', v.cipher]);
    expect(wrong.code).toBe(EXIT.MOUNT);
    expect(wrong.stderr).toBe(`sealfs: ${v.cipher} is a vault folder, not a mount point: give the folder where it is mounted (this vault is mounted at ${mnt}: \`sealfs unmount ${quoted}\`)\n`);
    expect(await isMounted(mnt)).toBe(true);

    const hint = /Unmount with: (.*)$/m.exec(m.stderr)![1]!;
    const pasted = paste(hint);
    expect(pasted.status, pasted.stderr).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
  });

  it('busy because of a mount inside it: names that mount and how to unmount it first (exit 7)', async () => {
    const outer = await h.vault();
    const inner = await h.vault();
    expect((await h.mount(outer)).code).toBe(EXIT.OK);
    const nested = join(outer.mnt, 'inner mount');
    await mkdir(nested);
    const m = await h.mount(inner, { mnt: nested });
    expect(m.code, m.stderr).toBe(EXIT.OK);
    const busy = await h.sealfs(['unmount', outer.mnt]);
    expect(busy.code).toBe(EXIT.MOUNT);
    expect(busy.stderr).toBe(`sealfs: ${outer.mnt} is busy: ${nested} is mounted inside it; unmount that first (\`sealfs unmount '${nested}'\`), then this one\n`);
    expect(await isMounted(outer.mnt)).toBe(true);
    // Doing what it says works.
    expect(paste(`sealfs unmount '${nested}'`).status).toBe(0);
    expect((await h.sealfs(['unmount', outer.mnt])).code).toBe(EXIT.OK);
  });
});
