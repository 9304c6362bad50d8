import { execFileSync } from 'node:child_process';
import type { CipherName } from '../src/crypto/ciphers.js';
import { MB } from './measure.js';

/** The physical reference: `openssl speed -evp`, one core, by cipher and chunk size (MB/s). */
export type Reference = ReadonlyMap<CipherName, ReadonlyMap<number, number>>;

/**
 * Reads the machine-readable (-mr) result, e.g. "+F:25:AES-256-GCM:2804742206.06": one
 * "+F" line per run whose last field is bytes per second at the one size asked for.
 */
export function parseSpeedOutput(text: string): number {
  const line = text.split('\n').find((l) => l.startsWith('+F:'));
  const bytesPerSecond = Number(line?.split(':').at(-1));
  if (!line || !Number.isFinite(bytesPerSecond)) throw new Error(`no "+F" result line in openssl speed output:\n${text}`);
  return bytesPerSecond / MB;
}

/**
 * `openssl speed` on one core, or with `processes` > 1 on that many at once (-multi: one process
 * per core, each on its own buffer; the "+F" line is then their sum, after one "Got: +F" line each).
 */
export function opensslSpeed(cipher: CipherName, chunk: number, seconds: number, processes = 1): number {
  const multi = processes > 1 ? ['-multi', String(processes)] : [];
  const args = ['speed', '-mr', ...multi, '-evp', cipher, '-bytes', String(chunk), '-seconds', String(seconds)];
  const stdout = execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseSpeedOutput(stdout);
}

/** OpenSSL's own throughput on `processes` cores at once: what this machine allows, to read the thread targets against. */
export interface Scaling {
  readonly cipher: CipherName;
  readonly chunk: number;
  readonly processes: number;
  /** Sum over the processes, MB/s. */
  readonly MBps: number;
}

/** The fastest of `rounds` one-second `openssl speed -multi` runs; undefined (with a note) when openssl cannot be run. */
export function measureScaling(cipher: CipherName, chunk: number, processes: number, rounds: number): Scaling | undefined {
  try {
    const speeds = Array.from({ length: rounds }, () => opensslSpeed(cipher, chunk, 1, processes));
    return { cipher, chunk, processes, MBps: Math.max(...speeds) };
  } catch (err) {
    process.stderr.write(`bench: openssl speed -multi unavailable (${(err as Error).message.split('\n')[0]})\n`);
    return undefined;
  }
}

/**
 * Every cipher at every chunk size, one after another, each the fastest of `rounds` one-second
 * runs; empty (with a note on stderr) when openssl cannot be run.
 */
export function measureReference(ciphers: readonly CipherName[], chunks: readonly number[], rounds: number): Reference {
  const reference = new Map<CipherName, Map<number, number>>();
  try {
    for (const cipher of ciphers) {
      const bySize = new Map<number, number>();
      for (const chunk of chunks) {
        const speeds = Array.from({ length: rounds }, () => opensslSpeed(cipher, chunk, 1));
        bySize.set(chunk, Math.max(...speeds));
      }
      reference.set(cipher, bySize);
    }
  } catch (err) {
    process.stderr.write(`bench: openssl speed unavailable (${(err as Error).message.split('\n')[0]}); no reference figures\n`);
    reference.clear();
  }
  return reference;
}
