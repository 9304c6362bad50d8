/**
 * Secrets in memory (issue 10, item 9): the process that serves a mount holds the master key
 * for as long as it runs, and a hostile cipher folder may try to make it abort. So it must
 * not be able to dump core, other processes of the same user must not be able to trace it or
 * read its memory, and the key must reach it as raw bytes only (never in argv, the
 * environment or a string in a message, which could not be wiped).
 *
 * What the kernel says is checked from outside the server: /proc/PID/limits (the core limit,
 * soft and hard) and prctl(PR_GET_DUMPABLE) called inside the server by gdb (as root, which
 * may still trace: the flag is what stops everyone else). What the launcher sends is read
 * from an strace of it.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeRecoveryKey } from '../src/vault/recovery.js';
import { alive, FUSE_PROBLEM, isMounted, useMountHarness, waitFor, type TestVault } from './mount-helpers.js';
import { forceUnmount } from '../bench/lib/proc.js';

const h = useMountHarness('hostile-secrets');

/** Tools these tests read the kernel with (scripts/setup.sh installs both). */
function missingTool(): string | undefined {
  for (const tool of ['gdb', 'strace']) if (spawnSync(tool, ['--version']).error) return `${tool} is not installed (scripts/setup.sh installs it)`;
  return undefined;
}
const TOOL_PROBLEM = missingTool();

/** The soft and hard "Max core file size" of a process. */
async function coreLimits(pid: number): Promise<[string, string]> {
  const line = (await readFile(`/proc/${pid}/limits`, 'utf8')).split('\n').find((l) => l.startsWith('Max core file size'));
  const [soft, hard] = line!.slice('Max core file size'.length).trim().split(/\s+/);
  return [soft!, hard!];
}

/** prctl(PR_GET_DUMPABLE) as the process itself answers it (gdb calls it inside the process, then detaches). */
async function dumpable(pid: number): Promise<number> {
  const r = await h.spawn('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', 'print (int)prctl(3, 0, 0, 0, 0)'], { timeoutMs: 60_000 });
  const match = /^\$1 = (-?\d+)$/m.exec(r.stdout);
  expect(match, `gdb could not ask process ${pid}: ${r.stdout}\n${r.stderr}`).not.toBeNull();
  return Number(match![1]);
}

/** The server still serves: a file written before reads back. */
async function stillServes(v: TestVault, content: string): Promise<void> {
  const started = Date.now();
  expect(await readFile(join(v.mnt, 'probe.txt'), 'utf8')).toBe(content);
  expect(Date.now() - started).toBeLessThan(5000);
}

/** Every string a strace -xx log shows as written, decoded to bytes. */
function writtenBytes(trace: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of trace.matchAll(/"((?:\\x[0-9a-f]{2})+)"/g)) out.push(Buffer.from(m[1]!.replace(/\\x/g, ''), 'hex'));
  return out;
}

/** The forms a key takes as text: base64 (with and without padding), hex, base64url, the recovery key. */
function textForms(key: Uint8Array): string[] {
  const b = Buffer.from(key);
  return [b.toString('base64'), b.toString('base64').replace(/=+$/, ''), b.toString('base64url'), b.toString('hex'), encodeRecoveryKey(key).trim()];
}

async function protectedServer(v: TestVault, pid: number): Promise<void> {
  expect(await coreLimits(pid)).toEqual(['0', '0']);
  expect(await dumpable(pid)).toBe(0);
  await stillServes(v, 'still here');
}

describe.skipIf(FUSE_PROBLEM !== undefined || TOOL_PROBLEM !== undefined)('the mount server keeps its key to itself', { timeout: 120_000 }, () => {
  it('gets the key as raw bytes over a pipe, never as text, argv or environment; cannot dump core or be traced', async () => {
    const v = await h.vault();
    const key = await h.masterKey(v);
    const trace = join(v.dir, 'launcher.strace');
    // Only the launcher is traced (no -f): what it sends is what leaves it.
    const m = await h.spawn(
      'strace',
      ['-o', trace, '-xx', '-s', '1000000', '-e', 'trace=write,writev,sendmsg,sendto,pwrite64', process.execPath, h.cli, 'mount', v.cipher, v.mnt, '--keystore', v.keystore, '--passphrase-file', v.pass, '--pid-file', v.pidFile, '--log-file', v.logFile],
      { timeoutMs: 60_000 },
    );
    try {
      expect(m.code, m.stderr).toBe(0);
      const pid = Number((await readFile(v.pidFile, 'utf8')).trim());
      await writeFile(join(v.mnt, 'probe.txt'), 'still here');

      const sent = writtenBytes(await readFile(trace, 'latin1'));
      const all = Buffer.concat(sent).toString('latin1');
      for (const form of textForms(key)) expect(all.includes(form), `the launcher wrote the key as text (${form.slice(0, 8)}…)`).toBe(false);
      // The raw bytes went out once, alone: the 32-byte write into the key pipe.
      const withKey = sent.filter((bytes) => bytes.includes(Buffer.from(key)));
      expect(withKey.map((bytes) => bytes.length)).toEqual([key.length]);

      for (const file of ['cmdline', 'environ']) {
        const text = (await readFile(`/proc/${pid}/${file}`)).toString('latin1');
        expect(text.includes(Buffer.from(key).toString('latin1'))).toBe(false);
        for (const form of textForms(key)) expect(text.includes(form), `/proc/${pid}/${file} holds the key`).toBe(false);
      }
      await protectedServer(v, pid);
      await h.unmountOk(v, pid);
    } finally {
      await forceUnmount(v.mnt); // mounted without h.mount(): taken down here, also on failure
    }
  });

  it('a foreground mount (-f) protects itself the same way', async () => {
    const v = await h.vault();
    const serving = h.sealfsKeyed(v, 'mount', [v.mnt, '-f', '--pid-file', v.pidFile, '--log-file', v.logFile], { timeoutMs: 90_000 });
    try {
      // The pid file is written just after the mount appears.
      const pidWritten = () => readFile(v.pidFile, 'utf8').then((text) => text.trim().length > 0, () => false);
      await waitFor('the foreground mount and its pid file', async () => (await isMounted(v.mnt)) && (await pidWritten()), 30_000);
      const pid = Number((await readFile(v.pidFile, 'utf8')).trim());
      expect(alive(pid)).toBe(true);
      await writeFile(join(v.mnt, 'probe.txt'), 'still here');
      await protectedServer(v, pid);
      await h.unmountOk(v, pid);
      expect((await serving).code).toBe(0);
    } finally {
      await forceUnmount(v.mnt);
    }
  });
});
