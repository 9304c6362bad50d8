/**
 * Debian's fio with data verification on random-offset I/O through a real sealfs mount:
 * fio writes blocks carrying checksums (crc32c) at random offsets and sizes, then reads them
 * back and checks every one. Buffered I/O (page cache) and O_DIRECT (every read reaches the
 * server and is decrypted there), one job and four concurrent ones, and a verify-only pass
 * after a remount (the data really is in the cipher folder). A self-check proves the
 * verification bites: a region damaged through the mount makes fio fail.
 */
import { spawnSync } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, useMountHarness, type Run } from './mount-helpers.js';

const h = useMountHarness('mount-fio');
const FIO_MISSING = spawnSync('fio', ['--version'], { encoding: 'utf8' }).error ? 'fio is not installed (Debian package fio)' : undefined;
const SKIP = FUSE_PROBLEM ?? FIO_MISSING;
if (SKIP) console.warn(`mount-fio: skipped: ${SKIP}`);

const MiB = 1024 * 1024;

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number; total_ios: number };
  write: { io_bytes: number; total_ios: number };
}

/** Runs fio; on success parses its JSON report. */
async function fio(args: string[]): Promise<{ run: Run; jobs: FioJob[] }> {
  const run = await h.spawn('fio', [...args, '--output-format=json'], { timeoutMs: 90_000 });
  let jobs: FioJob[] = [];
  try {
    jobs = (JSON.parse(run.stdout.slice(run.stdout.indexOf('{'))) as { jobs: FioJob[] }).jobs;
  } catch {
    // no JSON (fio stopped at a verify error): the caller looks at the exit code and stderr
  }
  return { run, jobs };
}

function expectClean(result: { run: Run; jobs: FioJob[] }): void {
  const { run, jobs } = result;
  expect(run.code, `fio exit code; stderr:\n${run.stderr}`).toBe(0);
  expect(run.stderr).not.toMatch(/verify|bad magic|crc32c|error/i);
  expect(jobs.length).toBeGreaterThan(0);
  for (const job of jobs) expect(job.error, `fio job ${job.jobname}`).toBe(0);
}

describe.skipIf(SKIP !== undefined)('fio with verify through a sealfs mount', { timeout: 120_000 }, () => {
  it('randrw, 64 MiB, 4k-64k blocks, psync, crc32c verify: no verify error', async () => {
    const v = await h.vault();
    await h.mountOk(v);
    const file = join(v.mnt, 'randrw.fio');
    const result = await fio([
      '--name=v',
      `--filename=${file}`,
      '--size=64M',
      '--rw=randrw',
      '--bs=4k-64k',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--ioengine=psync',
      '--numjobs=1',
    ]);
    expectClean(result);
    const [job] = result.jobs;
    expect(job!.write.io_bytes).toBeGreaterThan(16 * MiB);
    expect(job!.read.io_bytes).toBeGreaterThan(16 * MiB);
    expect((await stat(file)).size).toBe(64 * MiB);
    await h.unmountOk(v);
  });

  it('randwrite + verify with O_DIRECT, one job and four at once; verify-only after a remount; a damaged region is caught', async () => {
    const v = await h.vault();
    await h.mountOk(v);
    const file = join(v.mnt, 'direct.fio');
    const job = ['--name=w', `--filename=${file}`, '--size=64M', '--rw=randwrite', '--bs=4k-64k', '--verify=crc32c', '--verify_fatal=1', '--ioengine=psync', '--direct=1'];
    const written = await fio([...job, '--do_verify=1']);
    expectClean(written);
    // The verify pass read back (through the server: O_DIRECT) at least what was written.
    expect(written.jobs[0]!.read.io_bytes).toBeGreaterThanOrEqual(written.jobs[0]!.write.io_bytes);

    // Four jobs at once, each on its own file, random writes at unaligned sizes (1k-100k, 1k aligned).
    const four = await fio([
      '--name=four',
      `--directory=${v.mnt}`,
      '--filename_format=four.$jobnum',
      '--size=16M',
      '--rw=randwrite',
      '--bsrange=1k-100k',
      '--blockalign=1k',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--ioengine=psync',
      '--numjobs=4',
    ]);
    expectClean(four);
    expect(four.jobs).toHaveLength(4);

    // Unmount and mount again: fio checks the same blocks, now decrypted from the cipher folder.
    await h.unmountOk(v);
    await h.mountOk(v);
    expectClean(await fio([...job, '--verify_only']));

    // Self-check: damage 1 MiB in the middle through the mount; fio must notice.
    const fh = await open(file, 'r+');
    await fh.write(Buffer.alloc(MiB, 0xff), 0, MiB, 10 * MiB + 333);
    await fh.close();
    const damaged = await fio([...job, '--verify_only']);
    expect(damaged.run.code).not.toBe(0);
    expect(damaged.run.stderr).toMatch(/verify/);
    await h.unmountOk(v);
  });
});
