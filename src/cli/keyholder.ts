/**
 * Hardening of a process that holds a vault key for long (the mount server): no core dumps
 * and no ptrace or /proc/PID/mem access by other processes of the same user (the native
 * addon's protectProcess: RLIMIT_CORE 0 and prctl(PR_SET_DUMPABLE, 0)). Node has neither
 * call. Made before the key arrives; an execve would undo it, so each process makes it itself.
 */
import { loadAddon } from '../crypto/backends/native.js';

interface ProcessCalls {
  protectProcess(): void;
  isDumpable(): boolean;
}

/**
 * Protects this process; returns a warning when it cannot (no native addon), which the
 * caller logs: the mount still works, as it does with the JavaScript crypto backends.
 */
export function protectKeyHolder(): string | undefined {
  let calls: Partial<ProcessCalls>;
  try {
    calls = loadAddon() as unknown as Partial<ProcessCalls>;
  } catch (err) {
    return `core dumps and tracing of this process are not disabled: ${(err as Error).message}`;
  }
  if (typeof calls.protectProcess !== 'function' || typeof calls.isDumpable !== 'function') {
    return 'core dumps and tracing of this process are not disabled: the native addon is too old (rebuild it)';
  }
  calls.protectProcess();
  // Off Linux there is no dumpable flag to clear: only the core limit was set.
  if (calls.isDumpable() && process.platform === 'linux') return 'tracing of this process could not be disabled (prctl PR_SET_DUMPABLE)';
  return undefined;
}
