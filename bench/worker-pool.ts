import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Reply, Request } from './aead-worker.js';
import type { Case, Op, Sample } from './measure.js';

/**
 * Worker threads that run the one-thread loop side by side, each on its own buffers. They start
 * on first use, not before: booting them would steal CPU from whatever is being measured meanwhile.
 */
export class WorkerPool {
  private readonly size: number;
  private workers: readonly Worker[] = [];
  /** The case the workers' fixtures were built for, as JSON. */
  private prepared: string | undefined;

  constructor(size: number) {
    this.size = size;
  }

  /**
   * Starts every worker together on `op` over its own fixture for `c` (built on first use):
   * the sample is their total plaintext bytes over the wall time until the last one finishes.
   */
  async measure(c: Case, bufferBytes: number, op: Op, minSeconds: number): Promise<Sample> {
    const key = JSON.stringify({ c, bufferBytes });
    if (this.prepared !== key) {
      await this.exchange({ type: 'prepare', case: c, bufferBytes });
      this.prepared = key;
    }
    const start = performance.now();
    const replies = await this.exchange({ type: 'go', op, minSeconds });
    const seconds = (performance.now() - start) / 1000;
    const bytes = replies.reduce((total, reply) => total + (reply.type === 'done' ? reply.sample.bytes : 0), 0);
    return { bytes, seconds };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  /** Sends `request` to every worker and waits for each one's reply (rejects if one fails). */
  private async exchange(request: Request): Promise<Reply[]> {
    if (this.workers.length === 0) {
      this.workers = Array.from({ length: this.size }, () => new Worker(new URL('./aead-worker.js', import.meta.url)));
    }
    const replies = this.workers.map(async (worker) => (await once(worker, 'message'))[0] as Reply);
    for (const worker of this.workers) worker.postMessage(request);
    return Promise.all(replies);
  }
}
