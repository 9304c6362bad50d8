/**
 * The provider plants a hostile vault file (or a key store file is not what it should be):
 * every command that unlocks must finish within seconds with one clear line and its
 * documented exit code, never hang on a FIFO, never read a device or a huge file, never
 * follow a link out of the folder, never fail with an internal error. Each run is the built
 * CLI in its own process group with a time limit, so a hang fails the test instead of
 * blocking it.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuseUnmount, isMounted, runDetached, type Run } from '../bench/lib/proc.js';
import { EXIT } from '../src/cli/exit.js';
import { readControlFile } from '../src/vault/controlfile.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { CLI } from './build.js';

/** A run that takes longer than this hung (a passphrase-file unlock takes well under a second here). */
const LIMIT_MS = 15_000;

let root: string;
let cipher: string;
let keystore: string;
let pass: string;
let newPass: string;
let mnt: string;
let validVaultFile: Buffer;

function env(): NodeJS.ProcessEnv {
  return { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_STATE_HOME: join(root, 'state') };
}

async function sealfs(args: readonly string[]): Promise<Run & { ms: number }> {
  const start = Date.now();
  const run = await runDetached(process.execPath, [CLI, ...args], env(), LIMIT_MS);
  return { ...run, ms: Date.now() - start };
}

const keyArgs = () => ['--keystore', keystore, '--passphrase-file', pass];

/** The commands that unlock, and the exit code each gives when the vault file is bad. */
const COMMANDS: { name: string; args: () => string[]; code: number }[] = [
  { name: 'mount', args: () => ['mount', cipher, mnt, ...keyArgs()], code: EXIT.VAULT },
  { name: 'ls', args: () => ['ls', cipher, '/', ...keyArgs()], code: EXIT.VAULT },
  { name: 'passwd', args: () => ['passwd', cipher, ...keyArgs(), '--new-passphrase-file', newPass, '--kdf-target-ms', '20'], code: EXIT.VAULT },
  // scrub unlocks through the key stored for the folder and reports the vault file as a problem.
  { name: 'scrub', args: () => ['scrub', cipher, ...keyArgs()], code: EXIT.PROBLEMS },
];

/** What the provider puts under the vault file's name. */
const HOSTILE: { name: string; plant: (path: string) => Promise<void> }[] = [
  { name: 'a FIFO', plant: async (path) => void execFileSync('mkfifo', [path]) },
  { name: 'a symlink to /dev/zero', plant: (path) => symlink('/dev/zero', path) },
  {
    name: 'a symlink to a valid vault file elsewhere',
    plant: async (path) => {
      const elsewhere = join(root, 'elsewhere');
      await mkdir(elsewhere, { recursive: true });
      await writeFile(join(elsewhere, VAULT_FILE), validVaultFile);
      await symlink(join(elsewhere, VAULT_FILE), path);
    },
  },
  {
    name: 'a 1 GiB sparse file',
    plant: async (path) => {
      const handle = await open(path, 'w');
      await handle.truncate(2 ** 30);
      await handle.close();
    },
  },
  ...['null', '[]', '"x"', '1'].map((body) => ({ name: `${body} as its JSON`, plant: (path: string) => writeFile(path, `${body}\nhmac-sha256:00\n`) })),
  { name: 'truncated JSON', plant: async (path) => writeFile(path, validVaultFile.subarray(0, 40)) },
  { name: 'an empty file', plant: (path) => writeFile(path, '') },
];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-hostile-control-'));
  cipher = join(root, 'cipher');
  keystore = join(root, 'keystore');
  mnt = join(root, 'mnt');
  pass = join(root, 'pass');
  newPass = join(root, 'newpass');
  await mkdir(mnt);
  await writeFile(pass, 'hostile control passphrase\n');
  await writeFile(newPass, 'another hostile control passphrase\n');
  const init = await sealfs(['init', cipher, '--keystore', keystore, '--passphrase-file', pass, '--kdf-target-ms', '20']);
  expect(init.code, init.stderr).toBe(0);
  validVaultFile = await readFile(join(cipher, VAULT_FILE));
});

afterAll(async () => {
  if (mnt && (await isMounted(mnt))) await fuseUnmount(mnt);
  if (root) await rm(root, { recursive: true, force: true });
});

async function withVaultFile(plant: (path: string) => Promise<void>, body: () => Promise<void>): Promise<void> {
  const path = join(cipher, VAULT_FILE);
  await rm(path, { force: true });
  await plant(path);
  try {
    await body();
  } finally {
    if (await isMounted(mnt)) await fuseUnmount(mnt);
    await rm(path, { force: true });
    await writeFile(path, validVaultFile);
  }
}

describe('a hostile vault file', () => {
  for (const hostile of HOSTILE) {
    for (const command of COMMANDS) {
      it(`${command.name}: ${hostile.name} gives exit ${command.code} at once`, async () => {
        await withVaultFile(hostile.plant, async () => {
          const run = await sealfs(command.args());
          expect(run.timedOut, `${command.name} hung on ${hostile.name}`).toBe(false);
          expect(run.code, run.stderr).toBe(command.code);
          expect(run.stderr).not.toMatch(/internal error|TypeError|at .*\.js:\d+/);
          const lines = run.stderr.trim().split('\n').filter((line) => !line.startsWith('sealfs: warning:'));
          if (command.code === EXIT.VAULT) expect(lines, run.stderr).toHaveLength(1);
          // scrub lists its problems on stdout.
          expect(run.stdout + run.stderr).toContain(command.name === 'scrub' ? VAULT_FILE : cipher);
        });
      });
    }
  }

  it('the valid vault file still unlocks (the cases above fail for their vault file only)', async () => {
    const run = await sealfs(['ls', cipher, '/', ...keyArgs()]);
    expect(run.code, run.stderr).toBe(0);
  });
});

describe('a key store file that is not a file', () => {
  const keyFile = async () => {
    const id = (JSON.parse(validVaultFile.toString('utf8').split('\n')[0]!) as { vaultId: string }).vaultId;
    return join(keystore, `${id}.key`);
  };

  for (const [name, plant] of [
    ['a FIFO', async (path: string) => void execFileSync('mkfifo', [path])],
    ['a symlink to /dev/zero', (path: string) => symlink('/dev/zero', path)],
    ['a 1 GiB sparse file', async (path: string) => {
      const handle = await open(path, 'w');
      await handle.truncate(2 ** 30);
      await handle.close();
    }],
  ] as const) {
    it(`ls: ${name} as the key file gives exit ${EXIT.KEY} at once`, async () => {
      const path = await keyFile();
      const saved = join(root, 'saved.key');
      await copyFile(path, saved);
      await rm(path);
      await plant(path);
      try {
        const run = await sealfs(['ls', cipher, '/', ...keyArgs()]);
        expect(run.timedOut, `ls hung on ${name}`).toBe(false);
        expect(run.code, run.stderr).toBe(EXIT.KEY);
        expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
        expect(run.stderr).toContain(path);
      } finally {
        await rm(path, { force: true });
        await copyFile(saved, path);
      }
    });
  }
});

describe('readControlFile (src/vault/controlfile.ts): the one reader of sidecars, vault and key files', () => {
  it('reads a regular file up to its bound; refuses larger, links, FIFOs, devices and folders without reading or waiting', async () => {
    const dir = join(root, 'control');
    await mkdir(dir);
    await writeFile(join(dir, 'fits'), 'x'.repeat(100));
    await writeFile(join(dir, 'over'), 'x'.repeat(101));
    await symlink(join(dir, 'fits'), join(dir, 'link'));
    await symlink('/dev/zero', join(dir, 'zero'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await mkdir(join(dir, 'folder'));
    const read = (name: string) => readControlFile(join(dir, name), 100);

    const fits = await read('fits');
    expect(fits.ok && fits.bytes.toString()).toBe('x'.repeat(100));
    expect(await read('over')).toMatchObject({ ok: false, fault: 'too-large' });
    expect(await read('link')).toMatchObject({ ok: false, fault: 'not-regular', detail: 'it is a symbolic link, not a regular file' });
    expect(await read('zero')).toMatchObject({ ok: false, fault: 'not-regular' });
    const start = Date.now();
    expect(await read('fifo')).toMatchObject({ ok: false, fault: 'not-regular', detail: 'it is a FIFO, not a regular file' });
    expect(Date.now() - start).toBeLessThan(5000);
    expect(await read('folder')).toMatchObject({ ok: false, fault: 'not-regular', detail: 'it is a directory, not a regular file' });
    expect(await read('missing')).toMatchObject({ ok: false, fault: 'missing' });
    const under = await readControlFile(join(dir, 'fits', 'below'), 100);
    expect(under).toMatchObject({ ok: false, fault: 'unreadable' });
    expect(!under.ok && under.error?.code).toBe('ENOTDIR');
  });
});
