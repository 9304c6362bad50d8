/**
 * How a vault is served: cache times and how the cipher directory is reached. One object,
 * made where a command starts (`sealfs mount` and the offline tools) and passed down through
 * the vault, PlainFs and the kernel layer; nothing is switched process-wide.
 */
export interface MountSettings {
  /** How long the kernel may trust a file's attributes before asking again (ms). */
  readonly attrTimeoutMs: number;
  /** How long the kernel may trust a name it looked up before asking again (ms). */
  readonly entryTimeoutMs: number;
  /**
   * How long a decrypted directory listing is trusted before the cipher directory is read
   * again. Changes made through the mount update the listing at once; a sync client's show
   * up within this time plus the entry timeout.
   */
  readonly listingTtlMs: number;
  /**
   * How often an open file checks whether a sync client rewrote its ciphertext underneath:
   * the bound on serving an old version of an open file.
   */
  readonly revalidateMs: number;
  /** Gathered writes reach the cipher directory at the latest this long after the first of them. */
  readonly writeBackMs: number;
  /**
   * Synchronous system calls on the cipher directory (answered as settled promises): for the
   * mount server only, whose cipher directory is never inside the mount it serves. See
   * src/vault/cipherio.ts.
   */
  readonly directIo: boolean;
}

/** The README's promise: a sync client's change shows within 2 s, a write reaches the cipher folder within 1 s. */
export const DEFAULT_CACHE_SECONDS = 1;

/** Longest `--cache-time` accepted: an hour (the kernel's caches are meant to expire). */
export const MAX_CACHE_SECONDS = 3600;

/** Every cache time set to `seconds` (the mount's `--cache-time`, checked by the CLI). */
export function cacheTimes(seconds: number): Omit<MountSettings, 'directIo'> {
  const ms = seconds * 1000;
  return { attrTimeoutMs: ms, entryTimeoutMs: ms, listingTtlMs: ms, revalidateMs: ms, writeBackMs: ms };
}

/** Defaults for every command; the mount server sets directIo. */
export const DEFAULT_SETTINGS: MountSettings = { ...cacheTimes(DEFAULT_CACHE_SECONDS), directIo: false };

/** The settings of a mount server: direct cipher-directory calls, cache times as given. */
export function mountSettings(cacheSeconds: number = DEFAULT_CACHE_SECONDS): MountSettings {
  return { ...cacheTimes(cacheSeconds), directIo: true };
}
