/**
 * What the kernel is told about an entry's owner and mode: the one rule between the cipher
 * folder's attributes and the permission checks the kernel makes for other local users
 * (`--allow-other` mounts with default_permissions).
 *
 * Modes, owners and groups in the cipher folder are set by whoever writes there, the storage
 * provider included (Syncthing syncs modes by default), and format v1 stores no authenticated
 * copy. So they may only ever take access away, never give it:
 *
 * - The mount owner chooses at mount time the most other users may get (`--others-mode`,
 *   a chmod-style mode; none by default). Its group and other digits cap every entry's group
 *   and other bits; its owner digit caps the owner bits of entries that belong to another
 *   user. The mount owner's own entries keep their owner bits as stored: the mount owner
 *   holds the key anyway.
 * - Owners are those sealfs records: as root, sealfs gives what another user creates to that
 *   user in the cipher folder (PlainFs.own), so the folder's owner and group are shown;
 *   otherwise every entry belongs to the mount owner.
 * - setuid and setgid are never shown, and never stored through the mount either: a planted
 *   setuid bit would reach any copy made with `cp -a` by root. The sticky bit is shown as
 *   stored: it only restricts.
 */
import { constants } from 'node:fs';
import type { Owner } from '../vault/plainfs.js';

const STICKY = 0o1000;

/** The mode bits a mount stores and shows: permissions and the sticky bit. */
export const MODE_BITS = 0o1777;

export interface PermissionRule {
  /** The user the server runs as. */
  readonly mountOwner: Owner;
  /** Show the cipher folder's owner and group (sealfs runs as root and records creators). */
  readonly recordedOwners: boolean;
  /** The most other users may get, as a chmod-style mode (0 to 0o777). */
  readonly othersMode: number;
}

/** No cap: a mount without allow_other, which no other user can reach. */
export const NO_CAP = 0o777;

/** The rule for a server running as this process's user; `recordedOwners` from PlainFs.recordsOwners. */
export function permissionRule(othersMode: number, recordedOwners: boolean): PermissionRule {
  const mountOwner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  return { mountOwner, recordedOwners, othersMode: othersMode & 0o777 };
}

/** The owner, group and mode the kernel sees for an entry whose cipher attributes are `st`. */
export function shownAccess(st: { readonly mode: number; readonly uid: number; readonly gid: number }, rule: PermissionRule): { mode: number; uid: number; gid: number } {
  const uid = rule.recordedOwners ? st.uid : rule.mountOwner.uid;
  const gid = rule.recordedOwners ? st.gid : rule.mountOwner.gid;
  const cap = uid === rule.mountOwner.uid ? 0o700 | rule.othersMode : rule.othersMode;
  const mode = (st.mode & constants.S_IFMT) | (st.mode & STICKY) | (st.mode & 0o777 & cap);
  return { mode, uid, gid };
}
