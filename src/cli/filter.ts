import { createReadStream, createWriteStream } from 'node:fs';
import { access, rename, rm } from 'node:fs/promises';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateMasterKey, readKeyFile, writeNewKeyFile } from '../crypto/keyfile.js';
import { createDecryptStream, createEncryptStream } from '../crypto/stream.js';
import type { ContentOptions } from '../crypto/context.js';
import { partialPath } from '../tools/offline.js';
import { CliError, EXIT } from './exit.js';
import type { CliIo } from './io.js';

export async function keygen(out: string): Promise<void> {
  await writeNewKeyFile(out, generateMasterKey());
}

/**
 * Runs input → transform → output. A named output is written to a temporary file and
 * renamed into place only on success, so a failed decryption never leaves a partial file
 * that looks complete.
 */
async function filter(transform: Transform, input: string | undefined, output: string | undefined, force: boolean, io: CliIo) {
  const source: Readable = input && input !== '-' ? createReadStream(input) : io.stdin;
  if (!output || output === '-') {
    await pipeline(source, transform, io.stdout);
    return;
  }
  const temp = partialPath(output);
  try {
    await pipeline(source, transform, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    if (!force) await assertAbsent(output);
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

async function assertAbsent(path: string): Promise<void> {
  const exists = await access(path).then(() => true, () => false);
  if (exists) throw new CliError(`${path}: already exists (use --force to overwrite)`, EXIT.IO);
}

export interface FilterOptions extends ContentOptions {
  key: string;
  output?: string;
  force?: boolean;
}

export async function encryptCommand(input: string | undefined, options: FilterOptions, io: CliIo): Promise<void> {
  if (options.output && !options.force) await assertAbsent(options.output);
  const key = await readKeyFile(options.key);
  await filter(createEncryptStream(key, options), input, options.output, options.force ?? false, io);
}

export async function decryptCommand(input: string | undefined, options: FilterOptions, io: CliIo): Promise<void> {
  if (options.output && !options.force) await assertAbsent(options.output);
  const key = await readKeyFile(options.key);
  await filter(createDecryptStream(key, { backend: options.backend }), input, options.output, options.force ?? false, io);
}
