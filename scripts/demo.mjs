// The demo behind `bash scripts/demo.sh`: seal and open a file with the CLI filter, print the
// AEAD throughput table, then set up and mount a demo vault under ./demo and show the
// plaintext and the ciphertext side by side. Everything it creates stays under ./demo.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist/src/cli/main.js');
const demo = join(root, 'demo');
const paths = {
  key: join(demo, 'filter.key'),
  plain: join(demo, 'sample.bin'),
  sealed: join(demo, 'sample.bin.sealed'),
  opened: join(demo, 'sample.bin.opened'),
  passphrase: join(demo, 'passphrase.txt'),
  keystore: join(demo, 'keystore'),
  vault: join(demo, 'cipher'),
  mount: join(demo, 'plain'),
};

const say = (text) => process.stdout.write(`${text}\n`);
const sealfs = (...args) => execFileSync(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
const isMounted = (dir) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === dir);

mkdirSync(demo, { recursive: true });

say('== 1. One-call encryption with the CLI filter');
for (const f of [paths.key, paths.sealed, paths.opened]) if (existsSync(f)) execFileSync('rm', ['-f', f]);
writeFileSync(paths.plain, randomBytes(32 * 1024 * 1024));
sealfs('keygen', '--out', paths.key);
let t = performance.now();
sealfs('encrypt', '--key', paths.key, paths.plain, '-o', paths.sealed);
const encMs = performance.now() - t;
t = performance.now();
sealfs('decrypt', '--key', paths.key, paths.sealed, '-o', paths.opened);
const decMs = performance.now() - t;
const size = statSync(paths.plain).size;
const sealedSize = statSync(paths.sealed).size;
say(`plaintext ${size} bytes (sha256 ${sha(paths.plain)}), sealed ${sealedSize} bytes (+${sealedSize - size}, ${(((sealedSize - size) / size) * 100).toFixed(3)}%)`);
say(`encrypt ${encMs.toFixed(0)} ms, decrypt ${decMs.toFixed(0)} ms (whole CLI runs, Node start-up included); round trip ${sha(paths.opened) === sha(paths.plain) ? 'identical' : 'DIFFERENT'}`);

say('\n== 2. AEAD throughput (npm run bench:aead -- --quick)');
spawnSync(process.execPath, [join(root, 'dist/bench/aead.js'), '--quick'], { stdio: 'inherit' });

say('\n== 3. A demo vault, mounted');
if (!existsSync(paths.passphrase)) writeFileSync(paths.passphrase, randomBytes(18).toString('base64url') + '\n', { mode: 0o600 });
const unlock = ['--keystore', paths.keystore, '--passphrase-file', paths.passphrase];
if (!existsSync(join(paths.vault, 'sealfs.vault'))) {
  say(`sealfs init ${paths.vault}`);
  say(`recovery key: ${sealfs('init', paths.vault, ...unlock).trim()}`);
}
mkdirSync(paths.mount, { recursive: true });
if (isMounted(paths.mount)) sealfs('unmount', paths.mount);
sealfs('mount', paths.vault, paths.mount, ...unlock, '--log-file', join(demo, 'sealfs.log'));
say(`mounted ${paths.vault} on ${paths.mount}`);

// The shell writes through the mount: this process serves nothing, but stays out of the
// mount's way all the same.
execFileSync('sh', ['-c', `mkdir -p "${paths.mount}/Reports" && echo "Quarterly figures: confidential" > "${paths.mount}/Reports/q4 summary.txt" && cp "${join(root, 'README.md')}" "${paths.mount}/README.md"`]);

say('\nWhat your programs see (plaintext view):');
say(execFileSync('ls', ['-lR', paths.mount]).toString().trimEnd());
say(`\n$ cat "${paths.mount}/Reports/q4 summary.txt"`);
say(execFileSync('cat', [join(paths.mount, 'Reports/q4 summary.txt')]).toString().trimEnd());
say('\nWhat the sync client sees (cipher folder):');
say(execFileSync('ls', ['-lR', paths.vault]).toString().trimEnd());
const reports = readdirSync(paths.vault).find((name) => statSync(join(paths.vault, name)).isDirectory());
const inner = reports && readdirSync(join(paths.vault, reports))[0];
if (inner) {
  say('\nFirst bytes of the ciphertext of "q4 summary.txt":');
  say(execFileSync('od', ['-A', 'd', '-t', 'x1', '-N', '64', join(paths.vault, reports, inner)]).toString().trimEnd());
}
say(`\nThe key store (outside the cipher folder): ${paths.keystore}; the passphrase file: ${paths.passphrase}`);
say(`The mount keeps running in the background. To unmount:\n  node ${cli} unmount ${paths.mount}\n(or: fusermount3 -u ${paths.mount})`);
