/** A logger that never throws: a failing log (a closed terminal, a full disk) must not stop an answer. */
export function quiet(log: ((line: string) => void) | undefined): (line: string) => void {
  if (!log) return () => {};
  return (line) => {
    try {
      log(line);
    } catch {
      // nowhere left to report it
    }
  };
}

/**
 * The bound on a mount's log (README, "Logs"): whatever the cipher folder holds, at most
 * `burst` lines at once and one line per `refillMs` on average after that, each cut to
 * `maxChars` characters. Lines over the rate are counted and told in one line.
 */
export const LOG_LIMITS = { burst: 100, refillMs: 10_000, maxChars: 2048 } as const;

/**
 * `log` behind a token bucket (LOG_LIMITS): nothing the provider controls (junk names,
 * damaged files, each one a line) can grow the log faster than that. Dropped lines are
 * counted and reported in one line as soon as the bucket allows.
 */
export function rateLimited(log: (line: string) => void, limits: { burst: number; refillMs: number; maxChars: number } = LOG_LIMITS, now: () => number = Date.now): (line: string) => void {
  let tokens = limits.burst;
  let refilledAt = now();
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;

  const take = (): boolean => {
    const t = now();
    const earned = Math.floor((t - refilledAt) / limits.refillMs);
    if (earned > 0) {
      tokens = Math.min(limits.burst, tokens + earned);
      refilledAt = tokens === limits.burst ? t : refilledAt + earned * limits.refillMs;
    }
    if (tokens === 0) return false;
    tokens--;
    return true;
  };

  /** Tells the lines left out, if any and if the bucket allows; true when none is left untold. */
  const flush = (): boolean => {
    if (dropped === 0) return true;
    if (!take()) return false;
    log(`log: ${dropped} line(s) left out (more than ${limits.burst} at once, or more than one per ${limits.refillMs / 1000} s)`);
    dropped = 0;
    return true;
  };
  const schedule = (): void => {
    timer ??= setTimeout(() => {
      timer = undefined;
      if (!flush()) schedule();
    }, limits.refillMs).unref();
  };

  return (line) => {
    if (!flush() || !take()) {
      dropped++;
      schedule();
      return;
    }
    log(line.length > limits.maxChars ? `${line.slice(0, limits.maxChars)}… (cut)` : line);
  };
}
