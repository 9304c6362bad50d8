/**
 * Exit codes: the README's table is the contract for scripts, EXIT in src/cli/exit.ts is the
 * code's one copy, and describeError maps every layer's typed errors onto it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/crypto/errors.js';
import { KeyFileError } from '../src/crypto/keyfile.js';
import { MountError } from '../src/fs/errors.js';
import { ToolError, type ToolProblem } from '../src/tools/errors.js';
import { VaultError, type VaultProblem } from '../src/vault/errors.js';
import { CliError, CliExit, describeError, EXIT, TOOL_EXIT, VAULT_EXIT } from '../src/cli/exit.js';

/** The rows of the README's "### Exit codes" table: code → meaning. */
function readmeTable(): Map<number, string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^### Exit codes$/m)[1]?.split(/^#/m)[0];
  if (section === undefined) throw new Error('README.md has no "### Exit codes" section');
  const rows = new Map<number, string>();
  for (const line of section.split('\n')) {
    const match = /^\|\s*(\d+)\s*\|\s*(.+?)\s*\|$/.exec(line);
    if (match) rows.set(Number(match[1]), match[2]!);
  }
  return rows;
}

const table = readmeTable();

/** The documented meaning of each EXIT name, by a phrase of its README row. */
const MEANING: Readonly<Record<keyof typeof EXIT, RegExp>> = {
  OK: /^success$/,
  INTERNAL: /internal error/,
  USAGE: /bad command line/,
  IO: /could not be read or written/,
  INTEGRITY: /failed authentication/,
  KEY: /no usable key/,
  VAULT: /not a sealfs vault/,
  MOUNT: /mounting or unmounting failed/,
  UNSAFE: /refused as unsafe/,
  PROBLEMS: /found problems/,
  REMOTE: /backup transport failed/,
  IN_USE: /vault is in use/,
  INTERRUPTED: /interrupted/,
};

describe('exit codes', () => {
  it("the README's table has exactly the codes of EXIT, each with its meaning", () => {
    expect(table.size).toBeGreaterThan(10);
    expect([...table.keys()].sort((a, b) => a - b)).toEqual(Object.values(EXIT).sort((a, b) => a - b));
    for (const [name, code] of Object.entries(EXIT) as [keyof typeof EXIT, number][]) {
      expect(table.get(code), `README row for ${name} (${code})`).toMatch(MEANING[name]);
    }
  });

  it('every kind of every layer maps to the code whose README row names it', () => {
    const vaultRows: Readonly<Record<VaultProblem, RegExp>> = {
      'not-a-vault': /not a sealfs vault/,
      'vault-tampered': /vault file was edited/,
      'vault-too-new': /newer sealfs/,
      'vault-exists': /would be overwritten; `init` over an existing vault or into a non-empty folder/,
      'wrong-passphrase': /wrong passphrase/,
      'no-key': /no key for this vault/,
      'bad-recovery-key': /malformed key file or recovery key/,
      'key-location': /key store inside the cipher folder/,
    };
    for (const [kind, row] of Object.entries(vaultRows) as [VaultProblem, RegExp][]) {
      const { line, code } = describeError(new VaultError(kind, `vault says ${kind}`));
      expect(line).toBe(`vault says ${kind}`);
      expect(code).toBe(VAULT_EXIT[kind]);
      expect(table.get(code), kind).toMatch(row);
    }
    const toolRows: Readonly<Record<ToolProblem, RegExp>> = {
      remote: /transport failed/,
      'keys-inside': /`backup` of a vault with a key inside it/,
      overlap: /bad command line or options/,
      target: /would be overwritten/,
      'no-vault': /not a sealfs vault/,
      integrity: /failed authentication.*FIFO, socket or device/,
    };
    for (const [kind, row] of Object.entries(toolRows) as [ToolProblem, RegExp][]) {
      const { code } = describeError(new ToolError(kind, kind));
      expect(code).toBe(TOOL_EXIT[kind]);
      expect(table.get(code), kind).toMatch(row);
    }
    expect(table.get(describeError(new FormatError('corrupt-chunk', 'x', 3)).code)).toMatch(/failed authentication/);
    expect(table.get(describeError(new KeyFileError('malformed', '/k', 'x')).code)).toMatch(/malformed key file/);
    expect(table.get(describeError(new MountError('x')).code)).toMatch(/mounting or unmounting failed/);
    expect(table.get(describeError(Object.assign(new Error('ENOENT: no such file or directory, open'), { code: 'ENOENT', path: '/p' })).code)).toMatch(
      /could not be read or written/,
    );
    expect(describeError(new Error('a bug')).code).toBe(EXIT.INTERNAL);
  });

  it('the CLI error says its line and code; CliExit says nothing', () => {
    expect(describeError(new CliError('bad option', EXIT.USAGE))).toEqual({ line: 'bad option', code: EXIT.USAGE });
    expect(describeError(new CliExit(EXIT.PROBLEMS))).toEqual({ line: '', code: EXIT.PROBLEMS });
    const { line, code } = describeError(Object.assign(new Error('EEXIST: file already exists, open'), { code: 'EEXIST', path: '/out' }));
    expect([line, code]).toEqual(['/out: already exists (refusing to overwrite)', EXIT.IO]);
  });

  it('a file system error is said in words with its path, never as its raw code', () => {
    for (const [code, words] of [
      ['ENOENT', /^\/p: does not exist/],
      ['EACCES', /^\/p: permission denied/],
      ['ENOTDIR', /^\/p: a part of the path is not a folder/],
      ['ENOSPC', /^\/p: no space left/],
    ] as const) {
      const { line, code: exit } = describeError(Object.assign(new Error(`${code}: whatever node says, open '/p'`), { code, path: '/p' }));
      expect(line).toMatch(words);
      expect(line).not.toContain(code);
      expect(exit).toBe(EXIT.IO);
    }
    // sealfs's own errno errors name the plaintext path in their message: kept, without the code.
    const own = Object.assign(new Error('ENOENT: /docs/a.txt does not exist'), { code: 'ENOENT' });
    expect(describeError(own)).toEqual({ line: '/docs/a.txt does not exist', code: EXIT.IO });
  });
});
