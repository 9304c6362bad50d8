/**
 * `sealfs --help` and `sealfs COMMAND --help`, run in process: the top-level help fits 80
 * columns and lists every command in exactly one group; every command's help fits too and
 * ends with an example of itself and the exit codes it declares, in the words of
 * src/cli/exit.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EXIT, EXIT_MEANING, type ExitName } from '../src/cli/exit.js';
import { COMMAND_GROUPS, docOf, EXAMPLE_WIDTH, exitsOf, HELP_WIDTH, leafCommands } from '../src/cli/help.js';
import { buildProgram } from '../src/cli/program.js';
import { runInProcess } from './helpers-cli.js';

const program = buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {}, openTerminal: () => undefined });
const leaves = leafCommands(program);

async function help(args: readonly string[]): Promise<string> {
  const run = await runInProcess([...args, '--help'], {});
  expect(run.code, `sealfs ${args.join(' ')} --help: ${run.stderr}`).toBe(EXIT.OK);
  expect(run.stderr).toBe('');
  return run.stdout;
}

function expectWithin80(text: string, what: string): void {
  for (const line of text.split('\n')) expect(line.length, `${what}: ${JSON.stringify(line)}`).toBeLessThanOrEqual(HELP_WIDTH);
}

/** The lines of a help part ("Exit codes:") up to the next blank line. */
function part(text: string, heading: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) return [];
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

describe('sealfs --help', () => {
  it('fits 80 columns and lists every command under exactly one of the groups, in their order', async () => {
    const text = await help([]);
    expectWithin80(text, 'sealfs --help');
    const listed = new Map<string, string[]>();
    for (const group of COMMAND_GROUPS) {
      const rows = part(text, `${group.title}:`);
      for (const row of rows.filter((r) => /^ {2}\S/.test(r))) {
        // The longest command path the row starts with ("key export", not "key").
        const words = row.trim().split(/\s+/);
        const matches = leaves.filter((l) => l.path.every((w, i) => words[i] === w)).sort((x, y) => y.path.length - x.path.length);
        const path = matches[0]?.path.join(' ');
        expect(path, `${group.title}: ${row}`).toBeDefined();
        listed.set(path!, [...(listed.get(path!) ?? []), group.title]);
      }
    }
    for (const { path, cmd } of leaves) {
      const name = path.join(' ');
      expect(listed.get(name), `${name} in the top-level help`).toHaveLength(1);
      expect(COMMAND_GROUPS.find((g) => g.commands.includes(path[0]!))?.title).toBe(listed.get(name)![0]);
      expect(text).toContain(cmd.summary() || cmd.description());
    }
    expect(text).not.toContain('Other commands');
    const order = COMMAND_GROUPS.map((g) => text.indexOf(`\n${g.title}:\n`)).filter((i) => i >= 0);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(text).toContain('--version');
  });

  it('has every top-level command of the tree in exactly one group of the table', () => {
    const names = program.commands.map((c) => c.name());
    expect(names.length).toBeGreaterThan(15);
    for (const name of names) {
      expect(COMMAND_GROUPS.filter((g) => g.commands.includes(name)).map((g) => g.title), name).toHaveLength(1);
    }
    const all = COMMAND_GROUPS.flatMap((g) => g.commands);
    expect(new Set(all).size, 'a name in two groups').toBe(all.length);
  });
});

describe('sealfs COMMAND --help', () => {
  it.each(leaves.map((l) => [l.path.join(' '), l] as const))('%s: fits 80 columns, shows an example and the exit codes it declares', async (name, { path, cmd }) => {
    const doc = docOf(cmd);
    expect(doc, `${name} has no .documented({examples, exits})`).toBeDefined();
    const text = await help(path);
    expectWithin80(text, `sealfs ${name} --help`);

    const examples = part(text, doc!.examples.length === 1 ? 'Example:' : 'Examples:');
    expect(examples.map((l) => l.trim())).toEqual(doc!.examples);
    for (const example of doc!.examples) {
      expect(example, 'an example of this very command').toMatch(new RegExp(`(^|[|;&(] *|sudo )sealfs ${name}( |$)`));
      expect(example.length, example).toBeLessThanOrEqual(EXAMPLE_WIDTH);
    }

    // "  3    a file or folder…" with wrapped lines indented under the meaning.
    const codes = new Map<number, string>();
    let last = -1;
    for (const line of part(text, 'Exit codes:')) {
      const row = /^ {2}(\d+) +(.*)$/.exec(line);
      if (row) codes.set((last = Number(row[1])), row[2]!);
      else codes.set(last, `${codes.get(last)} ${line.trim()}`);
    }
    const declared = exitsOf(doc!);
    expect([...codes.keys()]).toEqual(declared.map((e) => e.code));
    for (const { name: exit, code } of declared) {
      expect(EXIT[exit]).toBe(code);
      expect(codes.get(code)).toBe(EXIT_MEANING[exit]);
    }
    for (const always of ['OK', 'INTERNAL', 'USAGE'] as const) expect(codes.has(EXIT[always])).toBe(true);
  });

  it('fits 80 columns for a command that only holds others (key)', async () => {
    const parents = program.commands.filter((c) => c.commands.length > 0);
    expect(parents.length).toBeGreaterThan(0);
    for (const parent of parents) expectWithin80(await help([parent.name()]), parent.name());
  });
});

describe('exit code meanings', () => {
  it("start as the README's table rows for the same codes do", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.split(/^### Exit codes$/m)[1]!.split(/^#/m)[0]!;
    for (const [name, code] of Object.entries(EXIT) as [ExitName, number][]) {
      const row = new RegExp(`^\\|\\s*${code}\\s*\\|\\s*(.+?)\\s*\\|$`, 'm').exec(section)?.[1];
      const opening = EXIT_MEANING[name].split(' ').slice(0, 3).join(' ');
      expect(row?.startsWith(opening), `${name}: "${opening}" vs README "${row}"`).toBe(true);
    }
  });
});
