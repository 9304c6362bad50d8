/**
 * The man page sealfs(1): package.json installs the file its build script writes, that file
 * is renderManPage of the command tree, it renders through groff and man-db without a
 * warning in 80 columns, and it holds every command with its examples and every exit code.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, EXIT_MEANING, type ExitName } from '../src/cli/exit.js';
import { COMMAND_GROUPS, docOf, leafCommands } from '../src/cli/help.js';
import { renderManPage } from '../src/cli/manpage.js';
import { buildProgram } from '../src/cli/program.js';
import { REPO } from './build.js';

const program = buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {}, openTerminal: () => undefined });
const packageJson = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { man: string[]; scripts: Record<string, string> };

let root: string;
let page: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-man-'));
  page = join(root, 'sealfs.1');
  // The build's own step (package.json build:ts), writing here instead of into dist/man/.
  const step = /node (scripts\/build-man\.mjs)/.exec(packageJson.scripts['build:ts']!)?.[1];
  expect(step, 'build:ts runs scripts/build-man.mjs').toBeDefined();
  const r = spawnSync(process.execPath, [join(REPO, step!), page], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** man's text for the page, at 80 columns, and what it said on stderr. */
function renderWithMan(): { code: number | null; text: string; stderr: string } {
  const r = spawnSync('man', ['-l', page], { env: { ...process.env, MANWIDTH: '80', LANG: 'C.UTF-8', MANPAGER: 'cat', PAGER: 'cat' }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, text: r.stdout, stderr: r.stderr };
}

describe('man page', () => {
  it('is what package.json installs: the build writes dist/man/sealfs.1 from the command tree', async () => {
    // An array: npm links a man page of a global install only when "man" is one.
    expect(packageJson.man).toEqual(['dist/man/sealfs.1']);
    expect(await readFile(page, 'utf8')).toBe(renderManPage(program));
  });

  it('renders through groff with every warning enabled, and none', () => {
    const r = spawnSync('groff', ['-ww', '-man', '-Tutf8', '-z', page], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('renders with `man -l` in 80 columns and holds every command, example and exit code', () => {
    const { code, text, stderr } = renderWithMan();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = text.split('\n');
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
    for (const group of COMMAND_GROUPS) {
      if (group.commands.some((name) => program.commands.some((c) => c.name() === name))) expect(lines).toContain(`   ${group.title}`);
    }
    for (const { path, cmd } of leafCommands(program)) {
      const name = `sealfs ${path.join(' ')}`;
      expect(lines.some((l) => l.trimStart().startsWith(`${name} `) || l.trim() === name), name).toBe(true);
      for (const example of docOf(cmd)!.examples) expect(lines.map((l) => l.trim()), name).toContain(example);
    }
    const status = text.split('\nEXIT STATUS\n')[1]!.split('\nSEE ALSO\n')[0]!.replace(/\s+/g, ' ');
    for (const [exit, code] of Object.entries(EXIT) as [ExitName, number][]) expect(status).toContain(`${code} ${EXIT_MEANING[exit]}`);
  });
});
