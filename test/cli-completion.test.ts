/**
 * `sealfs completion bash|zsh`: the scripts load in the real shells, with the built sealfs on
 * PATH as a user has it (`source <(sealfs completion bash)`), and bash's completion function,
 * driven as readline drives it (COMP_WORDS, COMP_CWORD), completes commands, aliases,
 * subcommands, options, option choices, and folders or files where the command wants them.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_NAMES } from '../src/crypto/backend.js';
import { leafCommands } from '../src/cli/help.js';
import { buildProgram } from '../src/cli/program.js';
import { CLI, REPO } from './build.js';

const program = buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {}, openTerminal: () => undefined });

let root: string;
let env: NodeJS.ProcessEnv;
/** Where completions of paths are tried: a folder and a file. */
let cwd: string;
/** The bash script as the built `sealfs completion bash` prints it. */
let bashScript: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-completion-'));
  const bin = join(root, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'sealfs'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
  await chmod(join(bin, 'sealfs'), 0o755);
  env = { PATH: `${bin}:${process.env.PATH}`, HOME: root, LANG: 'C.UTF-8' };
  cwd = join(root, 'work');
  await mkdir(join(cwd, 'vaultdir'), { recursive: true });
  await writeFile(join(cwd, 'afile'), '');
  bashScript = join(root, 'sealfs.bash');
  for (const [name, file] of [['bash', bashScript], ['zsh', join(root, '_sealfs')]]) {
    expect(shell('sh', ['-c', `sealfs completion ${name} > ${JSON.stringify(file)}`])).toMatchObject({ code: 0, stderr: '' });
  }
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function shell(name: string, args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(name, args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What bash's sealfs completion offers for the command line `words` (the last one is being typed). */
function complete(...words: string[]): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `source ${JSON.stringify(bashScript)} || exit 99
COMP_WORDS=(sealfs ${quoted}); COMP_CWORD=${words.length}; COMPREPLY=()
_sealfs sealfs; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = shell('bash', ['-c', script]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('bash completion', () => {
  it('loads from `sealfs completion bash` and registers for sealfs', () => {
    const r = shell('bash', ['-c', 'source <(sealfs completion bash); complete -p sealfs']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('complete -F _sealfs sealfs');
  });

  it('completes command names, aliases and subcommands', () => {
    expect(complete('mo')).toEqual(['mount', 'mount-helper']);
    expect(complete('u')).toEqual(['umount', 'unmount']);
    expect(complete('')).toEqual([...new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]))].sort());
    expect(complete('key', '')).toEqual(['export', 'import']);
    expect(complete('key', 'ex')).toEqual(['export']);
  });

  it("completes every command's options, and only its own", () => {
    for (const { path, cmd } of leafCommands(program)) {
      const longs = cmd.options.filter((o) => !o.hidden && o.long).map((o) => o.long!);
      expect(complete(...path, '--'), path.join(' ')).toEqual([...longs, '--help'].sort());
    }
    expect(complete('mount', '--re')).toEqual(['--read-only']);
    expect(complete('-')).toEqual(['--help', '--version', '-V', '-h']);
  });

  it('completes choices, folders and files where each is wanted', () => {
    expect(complete('mount', '--backend', '')).toEqual([...BACKEND_NAMES].sort());
    expect(complete('completion', '')).toEqual(['bash', 'zsh']);
    expect(complete('mount', '')).toEqual(['vaultdir']); // CIPHERDIR: folders only
    expect(complete('mount', 'va')).toEqual(['vaultdir']);
    expect(complete('umount', '')).toEqual(['vaultdir']); // the alias's MOUNTPOINT
    expect(complete('umount', 'vaultdir', '')).toEqual([]); // it takes one argument
    expect(complete('encrypt', '--key', '')).toEqual(['afile', 'vaultdir']); // a file (folders lead to it)
    expect(complete('mount', '--pid-file', '=', 'a')).toEqual(['afile']);
    // The option's value is skipped: the next word is CIPHERDIR again.
    expect(complete('mount', '--pid-file', 'afile', '')).toEqual(['vaultdir']);
    expect(complete('mount', '-f', '')).toEqual(['vaultdir']);
    // A path inside the vault is not on this disk: nothing to offer.
    expect(complete('cat', 'vaultdir', '')).toEqual([]);
  });
});

describe('zsh completion', () => {
  it('parses, loads after compinit, and defines a function for every command', () => {
    expect(shell('zsh', ['-n', join(root, '_sealfs')])).toMatchObject({ code: 0, stderr: '' });
    const functions = leafCommands(program).map(({ path }) => ['_sealfs', ...path].join('__').replace(/-/g, '_'));
    const check = functions.map((f) => `(( $+functions[${f}] )) || print -r -- missing ${f}`).join('\n');
    const r = shell('zsh', ['-f', '-c', `autoload -U compinit && compinit -u -D && source <(sealfs completion zsh) && print -r -- $_comps[sealfs]\n${check}`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('_sealfs');
  });

  it('completes commands, subcommands, options, choices and folders at a real zsh prompt', () => {
    const lines = {
      'sealfs mo': ['mount', 'mount-helper'],
      'sealfs u': ['umount', 'unmount'],
      'sealfs key ': ['export', 'import'],
      'sealfs mount --re': ['--read-only'],
      'sealfs mount --backend ': [...BACKEND_NAMES].sort(),
      'sealfs mount ': ['vaultdir'],
      'sealfs umount ': ['vaultdir'],
      'sealfs mount --pid-file=a': ['afile'],
      'sealfs completion ': ['bash', 'zsh'],
    };
    const r = shell('zsh', ['-f', join(REPO, 'test', 'complete-zsh.zsh'), join(root, '_sealfs'), ...Object.keys(lines)]);
    expect(r.stderr).toBe('');
    const offered = new Map(r.stdout.split('\n').filter(Boolean).map((l) => l.split(' => ') as [string, string]));
    for (const [line, want] of Object.entries(lines)) expect(offered.get(line)?.split('|').sort(), line).toEqual(want);
  });
});
