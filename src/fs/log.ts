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
