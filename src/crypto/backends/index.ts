import { BACKEND_NAMES, type AeadBackend, type BackendName } from '../backend.js';
import { loadNativeBackend } from './native.js';
import { createNobleBackend } from './noble.js';
import { createNodeBackend } from './node.js';

/** Environment variable that overrides automatic backend selection. */
export const BACKEND_ENV = 'SEALFS_BACKEND';

const cache = new Map<BackendName, AeadBackend>();
let warnedFallback = false;

function parseBackendName(text: string, source: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(text)) return text as BackendName;
  throw new RangeError(`${source}: unknown backend "${text}" (choose ${BACKEND_NAMES.join(', ')})`);
}

/** A specific backend; throws if it is the native one and the addon cannot be loaded. */
export function backendByName(name: BackendName): AeadBackend {
  let backend = cache.get(name);
  if (!backend) {
    backend = name === 'native' ? loadNativeBackend() : name === 'node' ? createNodeBackend() : createNobleBackend();
    cache.set(name, backend);
  }
  return backend;
}

/**
 * The backend to use: `requested` (an option), else $SEALFS_BACKEND, else native when
 * the addon loads, else node:crypto — announced once on stderr, since it is much slower.
 */
export function selectBackend(requested?: string): AeadBackend {
  const explicit = requested ?? process.env[BACKEND_ENV];
  if (explicit) return backendByName(parseBackendName(explicit, requested ? 'backend option' : BACKEND_ENV));
  try {
    return backendByName('native');
  } catch (err) {
    if (!warnedFallback) {
      warnedFallback = true;
      process.stderr.write(`sealfs: native crypto addon unavailable (${(err as Error).message.split('\n')[0]}); using node:crypto\n`);
    }
    return backendByName('node');
  }
}
