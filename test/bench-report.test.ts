/** The AEAD benchmark's parsing of `openssl speed` and its target lines (no timing here). */
import { describe, expect, it } from 'vitest';
import { parseSpeedOutput, type Reference } from '../bench/openssl.js';
import { scalingLine, targetLines, type Result } from '../bench/report.js';

const MULTI_OUTPUT = `Forked child 0
+DT:AES-256-GCM:1:65536
+R:13846:AES-256-GCM:1.000000
Forked child 1
Got: +H:65536 from 0
Got: +F:25:AES-256-GCM:2000000000.00 from 0
Got: +H:65536 from 1
Got: +F:25:AES-256-GCM:1500000000.00 from 1
+F:25:AES-256-GCM:3500000000.00
`;

function native(chunk: number, threads: number, op: 'encrypt' | 'decrypt', MBps: number): Result {
  return { backend: 'native', cipher: 'aes-256-gcm', chunk, threads, op, MBps };
}

describe('bench report', () => {
  it('reads the summed +F line of openssl speed -multi, not one child', () => {
    expect(parseSpeedOutput(MULTI_OUTPUT)).toBe(3500);
    expect(parseSpeedOutput('+DT:AES-256-GCM:1:65536\n+F:25:AES-256-GCM:3000000000.5\n')).toBeCloseTo(3000, 3);
  });

  it('checks the targets and shows openssl’s own scaling beside the thread lines', () => {
    const reference: Reference = new Map([['aes-256-gcm', new Map([[65536, 3000]])]]);
    const results = [
      native(4096, 1, 'encrypt', 1700), native(65536, 1, 'encrypt', 3000), native(65536, 2, 'encrypt', 4500),
      native(4096, 1, 'decrypt', 2000), native(65536, 1, 'decrypt', 2400), native(65536, 2, 'decrypt', 4000),
    ];
    const scaling = { cipher: 'aes-256-gcm', chunk: 65536, processes: 2, MBps: 5700 } as const;
    const lines = targetLines(results, reference, 2, scaling);
    expect(lines.map((line) => line.split(' ')[0])).toEqual(['PASS', 'FAIL', 'FAIL', 'FAIL', 'PASS', 'PASS']);
    expect(lines[1]).toContain('4500 MB/s = 1.50 × 3000 MB/s (openssl -multi 2: 1.90 × its 1 core)');
    expect(lines[3]).toContain('2400 MB/s = 0.80 × 3000 MB/s');
    expect(scalingLine(scaling, reference)).toBe(
      'openssl speed -multi 2 -evp aes-256-gcm, 64 KiB: 5700 MB/s = 1.90 × one core (what this machine gave 2 independent processes)',
    );
    expect(targetLines(results, reference, 2).every((line) => !line.includes('-multi'))).toBe(true);
  });
});
