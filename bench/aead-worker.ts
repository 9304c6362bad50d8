import { parentPort } from 'node:worker_threads';
import { makeFixture, syncStep, timeSync, type Case, type Fixture, type Op, type Sample } from './measure.js';

/**
 * One benchmark thread for the single-threaded JavaScript backends: "prepare" builds its own
 * fixture and answers "ready"; each "go" runs the one-thread loop on it and answers "done".
 */

export type Request =
  | { readonly type: 'prepare'; readonly case: Case; readonly bufferBytes: number }
  | { readonly type: 'go'; readonly op: Op; readonly minSeconds: number };
export type Reply = { readonly type: 'ready' } | { readonly type: 'done'; readonly sample: Sample };

function serve(port: NonNullable<typeof parentPort>): void {
  let fixture: Fixture | undefined;
  const reply = (message: Reply) => port.postMessage(message);
  port.on('message', (request: Request) => {
    if (request.type === 'prepare') {
      fixture = makeFixture(request.case, request.bufferBytes);
      reply({ type: 'ready' });
      return;
    }
    if (!fixture) throw new Error('"go" before "prepare"');
    reply({ type: 'done', sample: timeSync(syncStep(fixture, request.op), fixture.plain.length, request.minSeconds) });
  });
}

if (!parentPort) throw new Error('aead-worker.js runs only as a worker thread of bench/aead.js');
serve(parentPort);
