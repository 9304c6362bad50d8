#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { backendOption, chunkSizeOption, cipherOption } from './args.js';
import { describeError, EXIT } from './exit.js';
import { decryptCommand, encryptCommand, keygen } from './filter.js';
import { registerOfflineCommands } from './offline.js';
import { registerVaultKeyCommands } from './vaultkeys.js';
import { registerMountCommands } from './mount.js';
import { registerMaintenanceCommands } from './maintenance.js';

export function buildProgram(): Command {
  const program = new Command('sealfs')
    .description('Transparent client-side encryption for folders that sync clients upload')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.trimEnd().replace(/^error: /, 'sealfs: ') + '\n') });

  program
    .command('keygen')
    .description('create a new random 256-bit master key file (mode 0600; never overwrites)')
    .requiredOption('--out <keyfile>', 'where to write the key')
    .action((opts: { out: string }) => keygen(opts.out));

  program
    .command('encrypt')
    .description('encrypt IN (default: stdin) into a sealed file at -o OUT (default: stdout)')
    .argument('[in]', 'plaintext input file, or - for stdin')
    .requiredOption('--key <keyfile>', 'key file from `sealfs keygen`, or 32 raw bytes')
    .option('-o, --output <out>', 'output file (default: stdout)')
    .option('-f, --force', 'overwrite OUT if it exists')
    .addOption(cipherOption())
    .addOption(chunkSizeOption())
    .addOption(backendOption())
    .action((input: string | undefined, opts) => encryptCommand(input, opts));

  program
    .command('decrypt')
    .description('decrypt and verify a sealed file IN (default: stdin) to -o OUT (default: stdout)')
    .argument('[in]', 'sealed input file, or - for stdin')
    .requiredOption('--key <keyfile>', 'key file from `sealfs keygen`, or 32 raw bytes')
    .option('-o, --output <out>', 'output file (default: stdout)')
    .option('-f, --force', 'overwrite OUT if it exists')
    .addOption(backendOption())
    .action((input: string | undefined, opts) => decryptCommand(input, opts));

  registerVaultKeyCommands(program);
  registerMountCommands(program);
  registerOfflineCommands(program);
  registerMaintenanceCommands(program);

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const { line, code } = describeError(err);
    process.stderr.write(`sealfs: ${line}\n`);
    return code;
  }
}

// A closed stdout (e.g. `sealfs decrypt … | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.OK);
});

main(process.argv).then((code) => {
  process.exitCode = code;
});
