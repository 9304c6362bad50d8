/**
 * The leak test: through a real sealfs mount, unique random markers are written as file
 * contents, file names, folder names and symlink targets (and as names that take the
 * long-name scheme, renamed names, truncated-away tails); then, unmounted, every byte of every
 * file in the cipher folder, every name and every symlink target there is searched for each
 * marker: as UTF-8, UTF-16 (LE/BE), hex, base64/base64url and base32 (at every alignment).
 * None may appear. Then the same search for key material: the master key (from `sealfs key
 * export`, parsed with parseRecoveryKey), its hex/base64/base32 forms and recovery-key text,
 * the derived subkeys (deriveSubkey), every file's own content key (deriveFileKey), the
 * wrapped key and salt of the key store, and the passphrase. Finally the key store rules:
 * outside the cipher folder, key files 0600 in a 0700 folder.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, realpath, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { base32, base32crockford, base64, base64url, hex } from '@scure/base';
import { beforeAll, describe, expect, it } from 'vitest';
import { deriveFileKey, deriveSubkey, SUBKEY_INFO, type SubkeyPurpose } from '../src/crypto/kdf.js';
import { encodeRecoveryKey } from '../src/vault/recovery.js';
import { openVault } from '../src/vault/vault.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { FUSE_PROBLEM, treeContents, useMountHarness, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-leak');
if (FUSE_PROBLEM) console.warn(`mount-leak: skipped: ${FUSE_PROBLEM}`);

/** A fresh marker: ASCII, 24 random characters after a prefix. */
const marker = (kind: string) => `${kind}${randomBytes(12).toString('hex')}`;

/**
 * The parts of the encodings of `data` (with `bitsPerChar` bits per character) that depend on
 * `data` alone, for every alignment of `data` inside a longer text: what an encoding of any
 * text containing `data` contains.
 */
function innerEncodings(data: Uint8Array, bitsPerChar: number, encode: (bytes: Uint8Array) => string): string[] {
  const out = new Set<string>();
  const group = bitsPerChar === 4 ? 1 : bitsPerChar === 6 ? 3 : 5;
  for (let k = 0; k < group; k++) {
    const padded = new Uint8Array(k + data.length + group);
    padded.set(data, k);
    const text = encode(padded);
    const start = Math.ceil((8 * k) / bitsPerChar);
    const end = Math.floor((8 * (k + data.length)) / bitsPerChar);
    if (end - start >= 8) out.add(text.slice(start, end));
  }
  return [...out];
}

/** Every form in which `data` must not appear: raw, UTF-16 (for text), hex, base64, base32. */
function forms(data: Uint8Array, isText: boolean): { label: string; bytes: Buffer }[] {
  const out: { label: string; bytes: Buffer }[] = [{ label: 'raw', bytes: Buffer.from(data) }];
  if (isText) {
    const le = Buffer.from(Buffer.from(data).toString('utf8'), 'utf16le');
    out.push({ label: 'utf16le', bytes: le }, { label: 'utf16be', bytes: Buffer.from(le).swap16() });
  }
  const ascii = (label: string, texts: string[]) => {
    for (const text of texts) {
      out.push({ label, bytes: Buffer.from(text) });
      if (text.toLowerCase() !== text) out.push({ label: `${label} (lower case)`, bytes: Buffer.from(text.toLowerCase()) });
      if (text.toUpperCase() !== text) out.push({ label: `${label} (upper case)`, bytes: Buffer.from(text.toUpperCase()) });
    }
  };
  ascii('hex', innerEncodings(data, 4, hex.encode));
  ascii('base64', innerEncodings(data, 6, base64.encode));
  ascii('base64url', innerEncodings(data, 6, base64url.encode));
  ascii('base32', innerEncodings(data, 5, base32.encode));
  ascii('base32crockford', innerEncodings(data, 5, base32crockford.encode));
  return out;
}

interface Haystack {
  files: { path: string; bytes: Buffer }[];
  names: string[];
  targets: string[];
}

/** Where in the cipher tree (file bytes, names, symlink targets) any form of `needle` shows up. */
function findings(hay: Haystack, what: string, needle: Uint8Array, isText: boolean): string[] {
  const found: string[] = [];
  for (const form of forms(needle, isText)) {
    for (const file of hay.files) if (file.bytes.includes(form.bytes)) found.push(`${what} as ${form.label} in the content of ${file.path}`);
    const asText = form.bytes.toString('latin1').toLowerCase();
    for (const name of hay.names) if (Buffer.from(name).toString('latin1').toLowerCase().includes(asText)) found.push(`${what} as ${form.label} in the name ${name}`);
    for (const target of hay.targets) if (Buffer.from(target).toString('latin1').toLowerCase().includes(asText)) found.push(`${what} as ${form.label} in the symlink target ${target}`);
  }
  return found;
}

let v: TestVault;
let hay: Haystack;
const markers: Record<string, string> = {};

describe.skipIf(FUSE_PROBLEM !== undefined)('nothing leaks into the cipher folder (real FUSE mount)', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    v = await h.vault();
    const pid = await h.mountOk(v, { scope: 'file' });
    const M = v.mnt;
    for (const kind of ['content', 'bigcontent', 'tail', 'name', 'longname', 'oldname', 'newname', 'dir', 'deepdir', 'link', 'abslink', 'linkname', 'shellname', 'shellcontent']) {
      markers[kind] = marker(kind);
    }
    // Contents: small, across chunk boundaries and repeated, and a tail that is cut off again.
    await writeFile(join(M, 'notes.txt'), `before ${markers.content} after\n`);
    const big = Buffer.alloc(3 * 65536 + 999, 'filler ');
    for (const at of [0, 65536 - 7, 65536 * 2 + 5, big.length - markers.bigcontent!.length]) big.write(markers.bigcontent!, at, 'latin1');
    await writeFile(join(M, 'big.bin'), big);
    const fh = await open(join(M, 'cut.txt'), 'w+');
    await fh.write(`kept part ${'.'.repeat(70_000)}${markers.tail}`);
    await fh.truncate(10);
    await fh.close();
    // Names: a file, a name long enough for the long-name scheme (a sidecar file), a renamed file.
    await writeFile(join(M, `${markers.name}.txt`), 'named');
    const longName = `${markers.longname}-`.repeat(8).slice(0, 240);
    await writeFile(join(M, longName), 'long');
    await writeFile(join(M, `${markers.oldname}.doc`), 'renamed');
    await rename(join(M, `${markers.oldname}.doc`), join(M, `${markers.newname}.doc`));
    // Folders, nested, with files in them.
    await mkdir(join(M, markers.dir!, 'inner', markers.deepdir!), { recursive: true });
    await writeFile(join(M, markers.dir!, 'inner', markers.deepdir!, 'f.txt'), `${markers.content} again`);
    // Symlink targets (relative and absolute) and a symlink's own name.
    await symlink(`${markers.link}/target.txt`, join(M, 'rel-link'));
    await symlink(`/home/someone/${markers.abslink}`, join(M, markers.dir!, 'abs-link'));
    await symlink('notes.txt', join(M, markers.linkname!));
    // Through ordinary programs as well.
    const sh = await h.spawn('sh', ['-c', 'mkdir -p "$0/sub" && printf "%s" "$1" > "$0/sub/$2" && cp "$0/notes.txt" "$0/sub/copy.txt"', M, markers.shellcontent!, markers.shellname!]);
    expect(sh.code, sh.stderr).toBe(0);
    expect((await readdir(M)).sort()).toContain(longName);
    await h.unmountOk(v, pid);
    hay = await treeContents(v.cipher);
  }, 60_000);

  it('no marker (content, file name, folder name, symlink target) appears in any form in the cipher folder', async () => {
    expect(hay.files.length).toBeGreaterThan(8);
    expect(hay.targets.length).toBe(3);
    // The long name really took the long-name scheme (a sidecar holds the encrypted name).
    expect(hay.names.some((n) => n.endsWith('.sfn'))).toBe(true);
    const found: string[] = [];
    for (const [kind, text] of Object.entries(markers)) found.push(...findings(hay, `marker ${kind}`, Buffer.from(text), true));
    expect(found).toEqual([]);
    // Self-check of the search: the same markers are found where they are plaintext.
    const plainHay: Haystack = { files: [{ path: 'x', bytes: Buffer.from(`xx${base64.encode(Buffer.from(`ab${markers.content}`))}`) }], names: [markers.dir!.toUpperCase()], targets: [] };
    expect(findings(plainHay, 'content', Buffer.from(markers.content!), true).length).toBeGreaterThan(0);
    expect(findings(plainHay, 'dir', Buffer.from(markers.dir!), true).length).toBeGreaterThan(0);
  });

  it('no key material in the cipher folder: master key and its recovery text, subkeys, per-file keys, wrapped key, salt, passphrase', async () => {
    const key = await h.masterKey(v);
    // It is the vault's key: it opens the vault (the vault file's MAC verifies).
    await openVault(v.cipher, key, { backend: 'node' });
    const secrets: { what: string; bytes: Uint8Array; text?: boolean }[] = [
      { what: 'master key', bytes: key },
      { what: 'master key, first half', bytes: key.subarray(0, 16) },
      { what: 'master key, second half', bytes: key.subarray(16) },
      { what: 'recovery key', bytes: Buffer.from(encodeRecoveryKey(key)), text: true },
      { what: 'recovery key without dashes', bytes: Buffer.from(encodeRecoveryKey(key).replace(/-/g, '')), text: true },
      { what: 'passphrase', bytes: Buffer.from(v.passphrase), text: true },
    ];
    for (const purpose of Object.keys(SUBKEY_INFO) as SubkeyPurpose[]) secrets.push({ what: `${purpose} subkey`, bytes: deriveSubkey(key, purpose) });
    // Every content file's own key, from its header (FORMAT §2).
    const contentKey = deriveSubkey(key, 'content');
    let fileKeys = 0;
    for (const file of hay.files) {
      if (file.bytes.length >= 24 && file.bytes.subarray(0, 4).toString('latin1') === 'SEAL') {
        secrets.push({ what: `file key of ${file.path}`, bytes: deriveFileKey(contentKey, file.bytes.subarray(0, 24)) });
        fileKeys++;
      }
    }
    expect(fileKeys).toBeGreaterThanOrEqual(8);
    // The key store's wrapped key and salt: "not even wrapped".
    const keyFiles = await readdir(v.keystore);
    expect(keyFiles).toHaveLength(1);
    const stored = JSON.parse(await readFile(join(v.keystore, keyFiles[0]!), 'utf8')) as { kdf: { salt: string }; wrappedKey: { ciphertext: string; tag: string } };
    secrets.push(
      { what: 'wrapped key', bytes: Buffer.from(stored.wrappedKey.ciphertext, 'base64') },
      { what: 'wrapped key tag', bytes: Buffer.from(stored.wrappedKey.tag, 'base64') },
      { what: 'key store salt', bytes: Buffer.from(stored.kdf.salt, 'base64') },
    );
    const found: string[] = [];
    for (const secret of secrets) found.push(...findings(hay, secret.what, secret.bytes, secret.text ?? false));
    expect(found).toEqual([]);
    // Nor in the server's log (which is outside the cipher folder anyway).
    const log: Haystack = { files: [{ path: v.logFile, bytes: await readFile(v.logFile) }], names: [], targets: [] };
    const inLog: string[] = [];
    for (const secret of secrets) inLog.push(...findings(log, secret.what, secret.bytes, secret.text ?? false));
    expect(inLog).toEqual([]);
    // The cipher folder holds exactly one control file, the vault file, and no key file.
    expect(hay.names.filter((n) => n === VAULT_FILE)).toHaveLength(1);
    expect(hay.names.filter((n) => /\.key$|keystore/i.test(n))).toEqual([]);
  });

  it('the key store is outside the cipher folder; key files are 0600 in a 0700 folder; so is the default key store', async () => {
    const [cipher, keystore] = await Promise.all([realpath(v.cipher), realpath(v.keystore)]);
    const rel = relative(cipher, keystore);
    expect(rel.startsWith('..')).toBe(true);
    expect((await stat(keystore)).mode & 0o777).toBe(0o700);
    for (const name of await readdir(keystore)) {
      expect(name).toMatch(/^[0-9a-f-]{36}\.key$/);
      expect((await lstat(join(keystore, name))).mode & 0o777).toBe(0o600);
    }
    // Nothing in the cipher folder points at the key store.
    for (const target of hay.targets) expect(target).not.toContain(keystore);

    // Without --keystore: $XDG_CONFIG_HOME/sealfs (this file's own), also 0600 in 0700, and outside.
    const other = await h.vault({ init: false });
    const init = await h.sealfs(['init', other.cipher, '--passphrase-file', other.pass, '--kdf-target-ms', '20']);
    expect(init.code, init.stderr).toBe(0);
    const defaultStore = join(h.root, 'config', 'sealfs');
    expect((await stat(defaultStore)).mode & 0o777).toBe(0o700);
    const names = await readdir(defaultStore);
    expect(names).toHaveLength(1);
    expect((await lstat(join(defaultStore, names[0]!))).mode & 0o777).toBe(0o600);
    expect((await walk(other.cipher)).map((e) => e.name)).toEqual([VAULT_FILE]);
    // And a key store inside the cipher folder is refused (exit 8), writing nothing there.
    const inside = await h.vault({ init: false });
    await mkdir(inside.cipher);
    const refused = await h.sealfs(['init', inside.cipher, '--keystore', join(inside.cipher, 'keys'), '--passphrase-file', inside.pass, '--kdf-target-ms', '20']);
    expect(refused.code).toBe(8);
    expect(await readdir(inside.cipher)).toEqual([]);
  });
});
