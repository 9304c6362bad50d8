/**
 * The scrub's progress bar has its percentage and ETA from its first frame: the totals are
 * counted before the scrub starts (not alongside it, which gave a percentage only near the
 * end), and the clock of rate and ETA starts with the scrub, not with the counting. The pure
 * renderer and the bar with an injected clock, then one real scrub run in process with a
 * terminal-like stderr that records every frame.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { runCli } from '../src/cli/program.js';
import { ProgressBar, renderProgress } from '../src/tools/scrubprogress.js';
import { keyArgs, makeVaultIn, type TestVault } from './helpers-rclone.js';

/** A stream that looks like a terminal and keeps everything written to it. */
function fakeTerminal(columns = 100): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const parts: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk.toString('utf8'));
      callback();
    },
  });
  return Object.assign(stream, { isTTY: true, columns, text: () => parts.join('') });
}

/** The frames a bar drew: each starts with a carriage return and ends by clearing the line. */
const frames = (text: string) =>
  text
    .split('\r')
    .map((f) => f.replace(/\x1b\[K/g, ''))
    .filter((f) => f.trim() !== '');

describe('progress figures', () => {
  it('a known total gives a percentage and, once there is a rate, an ETA', () => {
    const start = renderProgress('scrub', { files: 0, bytes: 0, totalFiles: 10, totalBytes: 1000 }, 0, 100);
    expect(start).toMatch(/ 0% 0\/10 files/);
    const half = renderProgress('scrub', { files: 5, bytes: 500, totalFiles: 10, totalBytes: 1000 }, 10, 100);
    expect(half).toMatch(/ 50% 5\/10 files/);
    expect(half).toContain('ETA 00:10');
  });

  it('with nothing to read (every file skipped as unchanged) the files give the percentage and ETA', () => {
    const line = renderProgress('scrub', { files: 5, bytes: 0, totalFiles: 10, totalBytes: 0 }, 5, 100);
    expect(line).toMatch(/ 50% 5\/10 files/);
    expect(line).toContain('ETA 00:05');
  });

  it('no total, no percentage (what the bar showed before the count arrived)', () => {
    expect(renderProgress('scrub', { files: 3, bytes: 300 }, 1, 100)).not.toMatch(/%/);
  });

  it('the clock starts again when the work starts: counting time does not stretch the ETA', () => {
    let now = 0;
    const term = fakeTerminal();
    const bar = new ProgressBar('scrub', term, true, () => now);
    bar.status('counting files…');
    now = 100_000; // counting took 100 s
    bar.update({ totalFiles: 10, totalBytes: 1000 });
    bar.restart();
    now += 10_000;
    bar.update({ files: 5, bytes: 500 });
    const drawn = frames(term.text());
    expect(drawn[0]).toBe('scrub counting files…');
    expect(drawn.at(-1)).toMatch(/50% .*ETA 00:10/);
  });
});

describe('a real scrub on a terminal', () => {
  let root: string;
  let v: TestVault;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sealfs-progress-'));
    v = await makeVaultIn(root, 1);
  });
  afterAll(async () => {
    v?.masterKey.fill(0);
    await rm(root, { recursive: true, force: true });
  });

  it('counts first, then every frame has a percentage, from 0% on', async () => {
    const stderr = fakeTerminal();
    const stdout = fakeTerminal();
    const env = { ...process.env, HOME: join(root, 'home'), XDG_STATE_HOME: join(root, 'state') };
    const code = await runCli(['scrub', v.cipherDir, ...keyArgs(v)], {
      stdout,
      stderr,
      stdin: Readable.from([]),
      env,
      openTerminal: () => undefined,
    });
    expect(code, stderr.text()).toBe(EXIT.OK);
    const drawn = frames(stderr.text()).filter((f) => f.startsWith('scrub'));
    expect(drawn[0]).toBe('scrub counting files…');
    const bars = drawn.slice(1).filter((f) => f.includes('['));
    expect(bars.length).toBeGreaterThan(0);
    expect(bars[0]).toMatch(/\] 0% 0\/\d+ files/);
    for (const frame of bars) expect(frame).toMatch(/\] \d+% \d+\/\d+ files .* ETA /);
  });
});
