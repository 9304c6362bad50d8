import type { BackendName } from '../src/crypto/backend.js';
import { CIPHER_NAMES, type CipherName } from '../src/crypto/ciphers.js';
import { OPS, type Op } from './measure.js';
import type { Reference, Scaling } from './openssl.js';

/** Turning measured figures into the table, the JSON object and the target checks. */

export interface Result {
  readonly backend: BackendName;
  readonly cipher: CipherName;
  readonly chunk: number;
  readonly threads: number;
  readonly op: Op;
  readonly MBps: number;
}

/** The chunk size the reference always covers, and the one used where another size was not measured. */
export const REFERENCE_CHUNK = 64 * 1024;

export function chunkLabel(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

function formatMBps(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function formatFraction(value: number): string {
  return value >= 0.1 ? value.toFixed(2) : value.toFixed(3);
}

function referenceAt(reference: Reference, cipher: CipherName, chunk: number): { MBps: number; exact: boolean } | undefined {
  const bySize = reference.get(cipher);
  const exact = bySize?.get(chunk);
  if (exact !== undefined) return { MBps: exact, exact: true };
  const fallback = bySize?.get(REFERENCE_CHUNK);
  return fallback === undefined ? undefined : { MBps: fallback, exact: false };
}

function alignedTable(rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row.map((cell, column) => (rightAligned.has(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd(),
  );
}

export function referenceLines(reference: Reference): string[] {
  if (reference.size === 0) return ['openssl speed: not measured'];
  return [...reference].map(
    ([cipher, bySize]) =>
      `openssl speed -evp ${cipher}, 1 core: ` + [...bySize].map(([chunk, MBps]) => `${chunkLabel(chunk)} ${formatMBps(MBps)} MB/s`).join(', '),
  );
}

/** OpenSSL's figure on all cores at once against its one-core figure of the same run. */
function scalingFactor(scaling: Scaling, reference: Reference): number | undefined {
  const single = reference.get(scaling.cipher)?.get(scaling.chunk);
  return single === undefined ? undefined : scaling.MBps / single;
}

export function scalingLine(scaling: Scaling, reference: Reference): string {
  const factor = scalingFactor(scaling, reference);
  return (
    `openssl speed -multi ${scaling.processes} -evp ${scaling.cipher}, ${chunkLabel(scaling.chunk)}: ${formatMBps(scaling.MBps)} MB/s` +
    (factor === undefined ? '' : ` = ${factor.toFixed(2)} × one core (what this machine gave ${scaling.processes} independent processes)`)
  );
}

export function resultTable(results: readonly Result[], reference: Reference): string[] {
  const header = ['backend', 'cipher', 'chunk', 'threads', 'op', 'MB/s', '× openssl'];
  const rows = results.map((r) => {
    const base = referenceAt(reference, r.cipher, r.chunk);
    const fraction = base ? formatFraction(r.MBps / base.MBps) + (base.exact ? ' ' : '*') : '-';
    return [r.backend, r.cipher, chunkLabel(r.chunk), String(r.threads), r.op, formatMBps(r.MBps), fraction];
  });
  return alignedTable([header, ...rows], new Set([2, 3, 5, 6]));
}

export const TABLE_NOTES = [
  'MB/s: plaintext bytes per second, 1 MB = 10^6 bytes.',
  '× openssl: fraction of openssl speed -evp on one core at the same chunk size (* = its 64 KiB figure, that size not measured).',
];

export interface JsonReport {
  readonly openssl: Readonly<Record<CipherName, number | null>>;
  readonly cores: number;
  readonly results: readonly Result[];
}

export function jsonReport(reference: Reference, cores: number, results: readonly Result[]): JsonReport {
  const round = (value: number) => Math.round(value * 10) / 10;
  const openssl = Object.fromEntries(
    CIPHER_NAMES.map((cipher) => {
      const MBps = reference.get(cipher)?.get(REFERENCE_CHUNK);
      return [cipher, MBps === undefined ? null : round(MBps)];
    }),
  ) as Record<CipherName, number | null>;
  return { openssl, cores, results: results.map((r) => ({ ...r, MBps: round(r.MBps) })) };
}

function verdictLine(label: string, actual: number | undefined, factor: number, baseLabel: string, base: number | undefined): string {
  const need = `≥ ${factor} × ${baseLabel}`;
  if (actual === undefined || base === undefined) return `SKIP  ${label} ${need}: not measured`;
  const verdict = actual >= factor * base ? 'PASS' : 'FAIL';
  return `${verdict}  ${label} ${need}: ${formatMBps(actual)} MB/s = ${(actual / base).toFixed(2)} × ${formatMBps(base)} MB/s`;
}

/**
 * The native backend's throughput targets, checked on AES-256-GCM, one PASS/FAIL/SKIP line each.
 * With `scaling`, the thread lines also say how far openssl itself scaled in the same run: a
 * shared machine that does not give two processes twice the throughput cannot give it to two
 * threads either. The verdict is the target's, unchanged.
 */
export function targetLines(results: readonly Result[], reference: Reference, cores: number, scaling?: Scaling): string[] {
  const cipher: CipherName = 'aes-256-gcm';
  const native = (chunk: number, threads: number, op: Op) =>
    results.find((r) => r.backend === 'native' && r.cipher === cipher && r.chunk === chunk && r.threads === threads && r.op === op)?.MBps;
  const openssl = reference.get(cipher)?.get(REFERENCE_CHUNK);
  const at64k = `native ${cipher} ${chunkLabel(REFERENCE_CHUNK)}`;
  const factor = scaling && scaling.cipher === cipher && scaling.chunk === REFERENCE_CHUNK ? scalingFactor(scaling, reference) : undefined;
  const opensslScaled = factor === undefined ? '' : ` (openssl -multi ${scaling!.processes}: ${factor.toFixed(2)} × its 1 core)`;
  return OPS.flatMap((op) => {
    const single = native(REFERENCE_CHUNK, 1, op);
    return [
      verdictLine(`${at64k} 1 thread ${op}`, single, 0.85, 'openssl', openssl),
      verdictLine(`${at64k} ${cores} threads ${op}`, cores > 1 ? native(REFERENCE_CHUNK, cores, op) : undefined, 1.6, '1 thread', single) + opensslScaled,
      verdictLine(`native ${cipher} 4 KiB 1 thread ${op}`, native(4096, 1, op), 0.6, chunkLabel(REFERENCE_CHUNK), single),
    ];
  });
}
