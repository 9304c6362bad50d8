/**
 * Where sealfs keeps things outside the cipher directory, and the path rules every layer
 * uses to keep them outside it.
 */
import { homedir } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';

/**
 * Whether `child` is `parent` or lies below it. Both must be absolute and resolved the same
 * way (the callers use realpath/resolveLoosely, so a symlink cannot hide an overlap). Only a
 * whole `..` component leads out: a child named `..x` is inside.
 */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * `$XDG_STATE_HOME/sealfs`, else `~/.local/state/sealfs`: scrub state, mount logs and the
 * quarantine of repairs. The XDG spec says relative values are invalid and must be ignored.
 */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'sealfs');
  return join(env.HOME || homedir(), '.local', 'state', 'sealfs');
}

/**
 * Where mount servers publish their figures for `sealfs status` (src/fs/status.ts), in order
 * of preference: `sealfs` in the user's runtime folder (a tmpfs of theirs, emptied at
 * logout): `$XDG_RUNTIME_DIR`, and `/run/user/UID` where systemd makes it, for sessions that
 * do not say so (cron, su); then `mounts` in the state folder. A server writes into the first
 * it can use; `status` reads them all, so the two need not share a session.
 */
export function statusDirs(env: NodeJS.ProcessEnv = process.env, uid: number | undefined = process.getuid?.()): string[] {
  const runtimes = [env.XDG_RUNTIME_DIR, uid === undefined ? undefined : `/run/user/${uid}`].filter((dir): dir is string => !!dir && isAbsolute(dir));
  return [...new Set([...runtimes.map((dir) => join(dir, 'sealfs')), join(stateDir(env), 'mounts')])];
}

const VAULT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A vault id as sealfs writes them (a lowercase UUID). Vault ids name files (key store
 * entries, scrub state, logs, quarantine folders) but come from the untrusted vault file,
 * so only this shape, which can never name another path, is accepted.
 */
export function isVaultId(text: string): boolean {
  return VAULT_ID.test(text);
}

/**
 * `path` as one word for a POSIX shell, in single quotes only when it needs them: every
 * command a message tells the user to copy and paste names its paths through this.
 */
export function shellQuote(path: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
