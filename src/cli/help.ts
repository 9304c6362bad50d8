/**
 * What `sealfs --help` and `sealfs COMMAND --help` say beyond commander's own layout: the
 * top-level list of commands in groups, and under each command its examples and the exit
 * codes it can return. The same data (COMMAND_GROUPS, each command's CommandDoc) makes the
 * man page (manpage.ts) and the completion scripts (completion.ts), so they cannot drift.
 */
import { Command, Help, type Argument, type Option } from 'commander';
import { EXIT, EXIT_MEANING, type ExitName } from './exit.js';

/** Help is wrapped to this width (or a narrower terminal's). */
export const HELP_WIDTH = 80;

/**
 * The groups of the top-level help, in order, by top-level command name. Every command must
 * be in exactly one group (test/cli-help.test.ts fails otherwise); a command not in the table
 * is listed under "Other commands" so it is at least seen.
 */
export const COMMAND_GROUPS: readonly { readonly title: string; readonly commands: readonly string[] }[] = [
  { title: 'Everyday', commands: ['init', 'mount', 'unmount', 'status', 'info'] },
  { title: 'Keys', commands: ['key', 'passwd'] },
  { title: 'Integrity and backup', commands: ['scrub', 'backup', 'restore', 'repair'] },
  { title: 'Files without a mount', commands: ['ls', 'cat', 'export'] },
  { title: 'Streams (no vault)', commands: ['keygen', 'encrypt', 'decrypt'] },
  { title: 'Desktop and shell', commands: ['autostart', 'mount-helper', 'completion'] },
];

export const OTHER_GROUP = 'Other commands';

/** The group title of a top-level command. */
export function groupOf(name: string): string {
  return COMMAND_GROUPS.find((g) => g.commands.includes(name))?.title ?? OTHER_GROUP;
}

/** The longest example line: the man page indents examples by 15 of its 80 columns. */
export const EXAMPLE_WIDTH = 65;

/** Codes any command can end with: it worked, a bug, or commander refused the command line. */
const ALWAYS: readonly ExitName[] = ['OK', 'INTERNAL', 'USAGE'];

/** What each command declares about itself, beyond commander's arguments and options. */
export interface CommandDoc {
  /** Complete shell command lines showing typical uses of the command, at most EXAMPLE_WIDTH long. */
  readonly examples: readonly string[];
  /** The exit codes it can end with besides 0, 1 and 2 (which every command can), by EXIT name. */
  readonly exits: readonly ExitName[];
}

/**
 * A sealfs command: commander's Command that also carries its CommandDoc. Subcommands made
 * with `.command()` are SealfsCommands too, so every register file can call `.documented()`.
 */
export class SealfsCommand extends Command {
  doc: CommandDoc | undefined;

  override createCommand(name?: string): SealfsCommand {
    return new SealfsCommand(name);
  }

  /** Declares the command's examples and exit codes; its `--help` ends with them. */
  documented(doc: CommandDoc): this {
    this.doc = doc;
    return this.addHelpText('after', ({ command }) => `\n${formatDoc(doc, helpWidthOf(command))}`);
  }
}

/** The documentation of a command, if it has any (a parent such as `key` has none). */
export function docOf(cmd: Command): CommandDoc | undefined {
  return cmd instanceof SealfsCommand ? cmd.doc : undefined;
}

/** The exit codes a command can return, ascending, with their EXIT names. */
export function exitsOf(doc: CommandDoc): { name: ExitName; code: number }[] {
  const names = new Set<ExitName>([...ALWAYS, ...doc.exits]);
  return [...names].map((name) => ({ name, code: EXIT[name] })).sort((a, b) => a.code - b.code);
}

/** Every command that runs something (no subcommands), with its words after `sealfs`. */
export function leafCommands(program: Command): { path: string[]; cmd: Command }[] {
  const walk = (cmd: Command, path: string[]): { path: string[]; cmd: Command }[] =>
    cmd.commands.length ? cmd.commands.flatMap((sub) => walk(sub, [...path, sub.name()])) : [{ path, cmd }];
  return program.commands.flatMap((cmd) => walk(cmd, [cmd.name()]));
}

/** An argument as the help and the man page write it: CIPHERDIR, [PATH]. */
function argumentWord(arg: Argument): string {
  const name = arg.name().toUpperCase() + (arg.variadic ? '...' : '');
  return arg.required ? name : `[${name}]`;
}

/** The words after the command's name in its one-line form: arguments and mandatory options. */
export function synopsisWords(cmd: Command): string[] {
  const mandatory = cmd.options.filter((o: Option) => o.mandatory).map((o) => [o.long, o.flags.match(/[<[]([^>\]]+)[>\]]/)?.[1]?.toUpperCase()].filter(Boolean).join(' '));
  return [...cmd.registeredArguments.map(argumentWord), ...mandatory];
}

function helpWidthOf(cmd: Command): number {
  const width = cmd.configureOutput().getOutHelpWidth?.();
  return Math.min(HELP_WIDTH, width ?? HELP_WIDTH);
}

function wrap(text: string, width: number, indent: number): string {
  const helper = new Help();
  return helper
    .boxWrap(text, width - indent)
    .split('\n')
    .map((line) => ' '.repeat(indent) + line)
    .join('\n');
}

/** The "Examples" and "Exit codes" parts of a command's help. */
export function formatDoc(doc: CommandDoc, width: number): string {
  const examples = doc.examples.map((line) => `  ${line}`).join('\n');
  const exits = exitsOf(doc).map(({ name, code }) => {
    const term = `  ${String(code).padEnd(5)}`;
    return term + wrap(EXIT_MEANING[name], width, term.length).slice(term.length);
  });
  return `${doc.examples.length === 1 ? 'Example' : 'Examples'}:\n${examples}\n\nExit codes:\n${exits.join('\n')}`;
}

/** The widest command column of the top-level help (its summaries then have 46 columns). */
const MAX_TERM_WIDTH = 30;

/** The top-level help: usage, then every command in its group with its one-line summary. */
function formatRootHelp(program: Command, helper: Help): string {
  const width = helper.helpWidth ?? HELP_WIDTH;
  const rows = new Map<string, { term: string; summary: string }[]>();
  for (const title of [...COMMAND_GROUPS.map((g) => g.title), OTHER_GROUP]) rows.set(title, []);
  for (const { path, cmd } of leafCommands(program)) {
    const summary = cmd.summary() || cmd.description();
    rows.get(groupOf(path[0]!))!.push({ term: [...path, ...synopsisWords(cmd)].join(' '), summary });
  }
  const termWidth = Math.min(MAX_TERM_WIDTH, Math.max(...[...rows.values()].flat().map((r) => r.term.length)));
  // A term wider than the column gets its summary on the next line; summaries wrap.
  const item = (term: string, summary: string): string => {
    const indent = termWidth + 4;
    const text = wrap(summary, width, indent);
    return term.length <= termWidth ? `  ${term.padEnd(termWidth)}  ${text.slice(indent)}` : `  ${term}\n${text}`;
  };
  const out = [`Usage: ${program.name()} COMMAND [options] [arguments]`, '', helper.boxWrap(program.description(), width), ''];
  for (const [title, list] of rows) {
    if (!list.length) continue;
    out.push(`${title}:`, ...list.map((r) => item(r.term, r.summary)), '');
  }
  const options = helper.visibleOptions(program).map((o) => item(helper.optionTerm(o), helper.optionDescription(o)));
  out.push('Options:', ...options, '');
  out.push(helper.boxWrap(`\`${program.name()} COMMAND --help\` shows a command's options, an example and the exit codes it can return; \`man ${program.name()}\` shows it all.`, width), '');
  return out.join('\n');
}

/**
 * Sets up sealfs's help on the program (before any command is added, so they inherit it):
 * the grouped top-level help, commander's layout for each command, both at most HELP_WIDTH.
 */
export function configureSealfsHelp(program: Command): void {
  program.configureHelp({
    formatHelp: (cmd, helper) => (cmd.parent ? Help.prototype.formatHelp.call(helper, cmd, helper) : formatRootHelp(cmd, helper)),
    prepareContext(context) {
      Help.prototype.prepareContext.call(this, { ...context, helpWidth: Math.min(HELP_WIDTH, context.helpWidth ?? HELP_WIDTH) });
    },
  });
}
