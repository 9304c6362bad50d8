/**
 * The sealfs command as a function: runCli(argv, io) parses, runs one command and returns
 * its exit code. Importing this module does nothing; main.ts is the executable that calls
 * it with the process's own streams, and tests call it in process.
 */
import { CommanderError, type Command } from 'commander';
import { backendOption, chunkSizeOption, cipherOption } from './args.js';
import { describeError, EXIT } from './exit.js';
import { decryptCommand, encryptCommand, keygen } from './filter.js';
import { registerCompletionCommand } from './completion.js';
import { configureSealfsHelp, HELP_WIDTH, SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { registerOfflineCommands } from './offline.js';
import { registerVaultKeyCommands } from './vaultkeys.js';
import { registerMountCommands } from './mount.js';
import { registerMaintenanceCommands } from './maintenance.js';
import { addVersionOption } from './version.js';
import { registerAutostartCommands } from './autostart.js';
import { registerMountHelperCommands } from './mountopts.js';
import { registerStatusCommand } from './status.js';
import { registerInfoCommand } from './info.js';

/** The whole command tree; also what the man page and the completion scripts are made from. */
export function buildProgram(io: CliIo): SealfsCommand {
  const program = new SealfsCommand('sealfs')
    .description('Transparent client-side encryption for folders that sync clients upload: a vault folder holds only ciphertext, and `sealfs mount` shows it decrypted at a mount point.')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      getOutHelpWidth: () => (io.stdout.isTTY && io.stdout.columns) || HELP_WIDTH,
      getErrHelpWidth: () => (io.stderr.isTTY && io.stderr.columns) || HELP_WIDTH,
      outputError: (text, write) => write(text.trimEnd().replace(/^error: /, 'sealfs: ') + '\n'),
    });
  addVersionOption(program, io);
  configureSealfsHelp(program);

  program
    .command('keygen')
    .summary('create a random key file for encrypt/decrypt')
    .description('create a new random 256-bit master key file (mode 0600; never overwrites)')
    .documented({ examples: ['sealfs keygen --out ~/stream.key'], exits: ['IO'] })
    .requiredOption('--out <keyfile>', 'where to write the key')
    .action((opts: { out: string }) => keygen(opts.out));

  program
    .command('encrypt')
    .summary('encrypt a file or stdin with a key file')
    .description('encrypt IN (default: stdin) into a sealed file at -o OUT (default: stdout)')
    .documented({ examples: ['tar c Docs | sealfs encrypt --key ~/stream.key -o docs.sealed'], exits: ['IO', 'KEY'] })
    .argument('[in]', 'plaintext input file, or - for stdin')
    .requiredOption('--key <keyfile>', 'key file from `sealfs keygen`, or 32 raw bytes')
    .option('-o, --output <out>', 'output file (default: stdout)')
    .option('-f, --force', 'overwrite OUT if it exists')
    .addOption(cipherOption())
    .addOption(chunkSizeOption())
    .addOption(backendOption())
    .action((input: string | undefined, opts) => encryptCommand(input, opts, io));

  program
    .command('decrypt')
    .summary('decrypt and verify a sealed file')
    .description('decrypt and verify a sealed file IN (default: stdin) to -o OUT (default: stdout)')
    .documented({ examples: ['sealfs decrypt --key ~/stream.key docs.sealed | tar x'], exits: ['IO', 'KEY', 'INTEGRITY'] })
    .argument('[in]', 'sealed input file, or - for stdin')
    .requiredOption('--key <keyfile>', 'key file from `sealfs keygen`, or 32 raw bytes')
    .option('-o, --output <out>', 'output file (default: stdout)')
    .option('-f, --force', 'overwrite OUT if it exists')
    .addOption(backendOption())
    .action((input: string | undefined, opts) => decryptCommand(input, opts, io));

  registerVaultKeyCommands(program, io);
  registerMountCommands(program, io);
  registerOfflineCommands(program, io);
  registerMaintenanceCommands(program, io);
  registerStatusCommand(program, io);
  registerInfoCommand(program, io);
  registerCompletionCommand(program, io);
  registerAutostartCommands(program, io);
  registerMountHelperCommands(program, io);

  return program;
}

/**
 * After a command-line mistake (a missing argument, an unknown option…), every command
 * points at its own help, on the same line: an error is one line.
 */
function pointToHelp(command: Command, name: string): void {
  const { outputError } = command.configureOutput();
  command.configureOutput({ outputError: (text, write) => outputError!(`${text.trimEnd()} (see \`${name} --help\`)\n`, write) });
  for (const sub of command.commands) pointToHelp(sub, `${name} ${sub.name()}`);
}

/** Runs `sealfs ARGS…` (argv without node and the script) and returns its exit code; errors become one line on stderr. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  pointToHelp(program, program.name());
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const { line, code } = describeError(err);
    if (line) io.stderr.write(`sealfs: ${line}\n`);
    return code;
  }
}
