/**
 * The man page sealfs(1), made from the same command tree and data as `--help` (help.ts):
 * every command in its group with its arguments, options, examples and exit codes, then the
 * table of exit codes. scripts/build-man.mjs writes it into dist/man/ at build time.
 */
import type { Command, Help } from 'commander';
import { EXIT, EXIT_MEANING, type ExitName } from './exit.js';
import { COMMAND_GROUPS, docOf, exitsOf, groupOf, leafCommands, OTHER_GROUP, synopsisWords } from './help.js';
import { packageVersion } from './version.js';

/** Characters roff would read as markup, written so they print as themselves. */
const ROFF_CHARS: Readonly<Record<string, string>> = { '\\': '\\e', '-': '\\-', "'": '\\(aq', '`': '\\(ga' };

/** Text as roff input: markup characters escaped, non-ASCII as \[uXXXX], a leading . or ' made text. */
function roff(text: string): string {
  const escaped = [...text]
    .map((ch) => {
      const code = ch.codePointAt(0)!;
      return ROFF_CHARS[ch] ?? (code > 0x7e ? `\\[u${code.toString(16).toUpperCase().padStart(4, '0')}]` : ch);
    })
    .join('');
  return escaped.replace(/^\./gm, '\\&.');
}

const bold = (text: string) => `\\fB${roff(text)}\\fR`;
const italic = (text: string) => `\\fI${roff(text)}\\fR`;

/** Option flags such as "-o, --output <out>": the flags bold, the value's name italic. */
function flagsTerm(flags: string): string {
  return flags
    .split(/([ ,|]+)/)
    .map((part) => (part.startsWith('-') ? bold(part) : /^[<[]/.test(part) ? italic(part.replace(/^[<[]|[>\]]$/g, '')) : roff(part)))
    .join('');
}

/** The line of a command after `sealfs`: its words bold, options and arguments italic. */
function synopsis(path: readonly string[], cmd: Command): string {
  const words = synopsisWords(cmd).map((w) => (w.startsWith('-') ? w.split(' ').map((part, i) => (i ? italic(part) : bold(part))).join(' ') : italic(w)));
  const options = cmd.options.some((o) => !o.hidden && !o.mandatory) ? [`[${italic('options')}]`] : [];
  return [bold(`sealfs ${path.join(' ')}`), ...options, ...words].join(' ');
}

function commandSection(path: readonly string[], cmd: Command, helper: Help): string[] {
  const out = ['.PP', synopsis(path, cmd), '.RS 4', roff(cmd.description())];
  if (cmd.aliases().length) out.push('.PP', `Also: ${cmd.aliases().map((a) => bold(`sealfs ${[...path.slice(0, -1), a].join(' ')}`)).join(', ')}.`);
  for (const arg of helper.visibleArguments(cmd)) out.push('.TP', italic(arg.name()), roff(helper.argumentDescription(arg)));
  for (const option of helper.visibleOptions(cmd)) {
    if (option.long === '--help') continue; // every command has it; said once in DESCRIPTION
    out.push('.TP', flagsTerm(option.flags), roff(helper.optionDescription(option)));
  }
  const doc = docOf(cmd);
  if (doc) {
    out.push('.PP', doc.examples.length === 1 ? 'Example:' : 'Examples:', '.RS 4', '.nf', ...doc.examples.map(roff), '.fi', '.RE');
    out.push('.PP', `Exit status: ${exitsOf(doc).map((e) => e.code).join(', ')} (see ${bold('EXIT STATUS')}).`);
  }
  out.push('.RE');
  return out;
}

/** The whole page, roff with the man macros. */
export function renderManPage(program: Command): string {
  const helper = program.createHelp();
  const name = program.name();
  const [summary = ''] = program.description().split(':');
  const leaves = leafCommands(program);
  const titles = [...COMMAND_GROUPS.map((g) => g.title), OTHER_GROUP];
  const out = [
    `.\\" Generated from the sealfs command tree by scripts/build-man.mjs; do not edit.`,
    `.TH ${name.toUpperCase()} 1 "" "${roff(`${name} ${packageVersion()}`)}" "User Commands"`,
    '.nh', // no hyphenation and ragged right: option names and paths stay whole, as typed
    '.ad l',
    '.SH NAME',
    `${roff(name)} \\- ${roff(summary.charAt(0).toLowerCase() + summary.slice(1))}`,
    '.SH SYNOPSIS',
    ...titles.flatMap((title) => leaves.filter((l) => groupOf(l.path[0]!) === title).flatMap((l) => [synopsis(l.path, l.cmd), '.br'])),
    `${bold(`${name} --version`)}`,
    '.SH DESCRIPTION',
    roff(program.description()),
    '.PP',
    `Every command takes ${bold('--help')} (${bold('-h')}), which prints its options, an example and the exit codes it can return. ` +
      `${bold(`${name} completion bash`)} and ${bold(`${name} completion zsh`)} print shell completion scripts.`,
    '.SH COMMANDS',
  ];
  for (const title of titles) {
    const inGroup = leaves.filter((l) => groupOf(l.path[0]!) === title);
    if (!inGroup.length) continue;
    out.push(`.SS ${roff(title)}`);
    for (const { path, cmd } of inGroup) out.push(...commandSection(path, cmd, helper));
  }
  out.push('.SH EXIT STATUS');
  for (const [exit, code] of Object.entries(EXIT) as [ExitName, number][]) out.push('.TP', bold(String(code)), roff(EXIT_MEANING[exit]));
  out.push('.SH SEE ALSO', '.BR fusermount3 (1),', '.BR rclone (1),', '.BR fuse (8)');
  return out.join('\n') + '\n';
}
