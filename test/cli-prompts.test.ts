/**
 * The prompts on a real terminal, driven through tmux as a user types (issue 13 §5): the
 * recovery key is shown as typed, in the groups it is printed in; a passphrase is never
 * shown; Ctrl-C at either prompt exits 130 and gives the terminal back as it was (`stty -a`
 * afterwards shows echo and canonical mode on).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { shellQuote } from '../src/vault/paths.js';
import { CLI } from './build.js';
import { runBuiltCli } from './helpers-cli.js';

const hasTmux = spawnSync('tmux', ['-V'], { stdio: 'ignore' }).status === 0;
// CI must run these: scripts/setup.sh installs tmux.
if (!hasTmux && process.env.CI) throw new Error('tmux is missing (scripts/setup.sh installs it)');

let root: string;
let socket: string;
let sessions = 0;

function tmux(...args: string[]): string {
  const result = spawnSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) throw new Error(`tmux ${args[0]} failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * Runs `sealfs ARGS` in a new tmux window (a real terminal, 120 columns), then prints its
 * exit code and the terminal's settings, and keeps the window open to be read.
 */
function start(args: readonly string[], stdin = ''): string {
  const name = `s${sessions++}`;
  const env = `HOME=${shellQuote(join(root, 'home'))} XDG_CONFIG_HOME=${shellQuote(join(root, 'home', '.config'))}`;
  const command = `env ${env} ${shellQuote(process.execPath)} ${shellQuote(CLI)} ${args.map(shellQuote).join(' ')} ${stdin}; echo "rc=$?"; stty -a; sleep 600`;
  tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '50', command);
  return name;
}

const screen = (name: string) => tmux('capture-pane', '-p', '-t', name);
const type = (name: string, text: string) => void tmux('send-keys', '-t', name, '-l', text);
const press = (name: string, ...keys: string[]) => void tmux('send-keys', '-t', name, ...keys);

async function waitForScreen(name: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = screen(name);
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`the terminal never showed ${pattern}; it shows:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The settings line of `stty -a` that the prompt changes: echo and canonical mode must be on again. */
function expectTerminalRestored(text: string): void {
  const settings = text.slice(text.indexOf('rc='));
  expect(settings).toMatch(/(^|\s)icanon(\s|$)/m);
  expect(settings).toMatch(/(^|\s)echo(\s|$)/m);
  expect(settings).not.toMatch(/(^|\s)-echo(\s|$)/m);
}

/** A vault with a known passphrase and its recovery key. */
async function makeVault(name: string): Promise<{ cipherDir: string; keystore: string; recovery: string }> {
  const cipherDir = join(root, name);
  const keystore = join(root, `${name}-keys`);
  const pass = join(root, `${name}-pass`);
  await writeFile(pass, 'a passphrase for the prompt tests\n', { mode: 0o600 });
  const init = await runBuiltCli(['init', cipherDir, '--keystore', keystore, '--passphrase-file', pass, '--kdf-target-ms', '20'], process.env);
  expect(init.code, init.stderr).toBe(EXIT.OK);
  return { cipherDir, keystore, recovery: init.stdout.trim() };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-prompts-'));
  socket = join(root, 'tmux.sock');
});

afterAll(async () => {
  if (hasTmux && sessions > 0) spawnSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
  await rm(root, { recursive: true, force: true });
});

describe.skipIf(!hasTmux)('prompts on a terminal (tmux)', { timeout: 90_000 }, () => {
  it('the recovery key is shown as typed, grouped as on paper; the new passphrase is never shown', async () => {
    const { cipherDir, recovery } = await makeVault('v1');
    const compact = recovery.replace(/-/g, '').toLowerCase();
    const w = start(['key', 'import', cipherDir, '--keystore', join(root, 'new-keys'), '--kdf-target-ms', '20']);
    await waitForScreen(w, /Recovery key:\s*$/m);
    // Typed in lower case without the dashes: shown in upper case, the dashes put back.
    type(w, compact.slice(0, 7));
    await waitForScreen(w, new RegExp(`^Recovery key: ${recovery.slice(0, 8)}$`, 'm'));
    press(w, 'BSpace', 'BSpace');
    await waitForScreen(w, new RegExp(`^Recovery key: ${recovery.slice(0, 5)}$`, 'm'));
    type(w, compact.slice(5));
    const typed = await waitForScreen(w, new RegExp(`^Recovery key: ${recovery}$`, 'm'));
    expect(typed).toContain(`Recovery key: ${recovery}`);
    press(w, 'Enter');
    await waitForScreen(w, /Enter a new passphrase for this vault:\s*$/m);
    type(w, 'a fresh passphrase typed here');
    await new Promise((resolve) => setTimeout(resolve, 500)); // time for an echo to show, were there one
    expect(screen(w)).toMatch(/Enter a new passphrase for this vault:\s*$/m);
    press(w, 'Enter');
    await waitForScreen(w, /Repeat a new passphrase for this vault:\s*$/m);
    type(w, 'a fresh passphrase typed here');
    press(w, 'Enter');
    const done = await waitForScreen(w, /rc=\d+[\s\S]*icanon/); // the exit code, then stty's settings
    expect(done).toContain('rc=0');
    expect(done).toContain('the vault can be unlocked with the new passphrase');
    expect(done).not.toContain('fresh passphrase');
    expectTerminalRestored(done);
  });

  // With stdin not the terminal, the prompt opens /dev/tty itself, which Node does not restore at exit: sealfs must.
  for (const [how, stdin] of [['stdin the terminal', ''], ['stdin not a terminal', '< /dev/null']] as const) {
    it(`Ctrl-C at the passphrase prompt (${how}): exit 130, nothing typed shown, the terminal as it was`, async () => {
      const { cipherDir, keystore } = await makeVault(`v2-${sessions}`);
      const w = start(['key', 'export', cipherDir, '--keystore', keystore], stdin);
      await waitForScreen(w, /Enter passphrase for .*:\s*$/m);
      type(w, 'secret so far');
      press(w, 'C-c');
      const done = await waitForScreen(w, /rc=\d+[\s\S]*icanon/);
      expect(done).toContain('sealfs: cancelled');
      expect(done).toContain(`rc=${EXIT.INTERRUPTED}`);
      expect(done).not.toContain('secret so far');
      expectTerminalRestored(done);
    });
  }

  it('Ctrl-C at the recovery key prompt: exit 130, the terminal as it was', async () => {
    const { cipherDir } = await makeVault('v3');
    const w = start(['key', 'import', cipherDir, '--keystore', join(root, 'other-keys')]);
    await waitForScreen(w, /Recovery key:\s*$/m);
    type(w, 'abcde');
    await waitForScreen(w, /^Recovery key: ABCDE$/m);
    press(w, 'C-c');
    const done = await waitForScreen(w, /rc=\d+[\s\S]*icanon/);
    expect(done).toContain(`rc=${EXIT.INTERRUPTED}`);
    expectTerminalRestored(done);
  });
});
