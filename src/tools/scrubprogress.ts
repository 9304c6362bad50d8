/**
 * A one-line progress bar for long jobs (scrub, backup), drawn on a terminal only. No
 * dependency: thirty lines do not justify a package in the trusted core.
 */
export interface ProgressFigures {
  files: number;
  bytes: number;
  /** Totals, once known (else the bar shows no percentage or ETA). */
  totalFiles?: number;
  totalBytes?: number;
  /** An explicit rate in bytes/s (e.g. rclone's); default: bytes / elapsed. */
  rate?: number;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * How far along the job is, from 0 to 1: by bytes, else (nothing to read but files to pass,
 * as in a `--changed` scrub that skips them all) by files; undefined while no total is known.
 */
function doneFraction(f: ProgressFigures): number | undefined {
  if (f.totalBytes) return Math.min(1, f.bytes / f.totalBytes);
  if (f.totalFiles) return Math.min(1, f.files / f.totalFiles);
  return undefined;
}

/** The bar's text for `figures` after `elapsed` seconds, fitted to `width` columns. */
export function renderProgress(label: string, f: ProgressFigures, elapsed: number, width: number): string {
  const rate = f.rate ?? (elapsed > 0 ? f.bytes / elapsed : 0);
  const fraction = doneFraction(f);
  // Seconds left: bytes to go at the current rate, or, counting files, the time per file so far.
  const eta =
    fraction === undefined
      ? NaN
      : f.totalBytes
        ? rate > 0
          ? (f.totalBytes - f.bytes) / rate
          : NaN
        : fraction > 0
          ? (elapsed * (1 - fraction)) / fraction
          : NaN;
  const files = f.totalFiles !== undefined ? `${f.files}/${f.totalFiles} files` : `${f.files} files`;
  const bytes = f.totalBytes !== undefined ? `${formatBytes(f.bytes)}/${formatBytes(f.totalBytes)}` : formatBytes(f.bytes);
  const text = ` ${fraction !== undefined ? `${Math.floor(fraction * 100)}% ` : ''}${files} ${bytes} ${formatBytes(rate)}/s ETA ${formatDuration(eta)}`;
  const barWidth = Math.max(0, Math.min(30, width - label.length - text.length - 4));
  const filled = Math.round((fraction ?? 0) * barWidth);
  const bar = barWidth > 0 ? ` [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]` : '';
  return `${label}${bar}${text}`.slice(0, Math.max(10, width - 1));
}

/** Where a bar is drawn: a terminal has isTTY and columns. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Redraws at most 5 times a second on `stream` when it is a terminal; otherwise does nothing. */
export class ProgressBar {
  private started: number;
  private last = -Infinity;
  private drawn = false;
  private figures: ProgressFigures = { files: 0, bytes: 0 };

  /** `now`: a clock in milliseconds (tests pass their own). */
  constructor(
    private readonly label: string,
    private readonly stream: ProgressStream = process.stderr,
    readonly enabled: boolean = stream.isTTY === true,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  update(figures: Partial<ProgressFigures>, force = false): void {
    this.figures = { ...this.figures, ...figures };
    if (!this.enabled) return;
    const now = this.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    this.draw(renderProgress(this.label, this.figures, (now - this.started) / 1000, this.stream.columns || 80));
  }

  /** Shows `text` after the label in place of the figures (e.g. while the totals are counted). */
  status(text: string): void {
    if (this.enabled) this.draw(`${this.label} ${text}`.slice(0, Math.max(10, (this.stream.columns || 80) - 1)));
  }

  /** Starts the clock again (rate and ETA count from now): the work itself begins after a preparation such as counting. */
  restart(): void {
    this.started = this.now();
    this.last = -Infinity;
  }

  private draw(line: string): void {
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }

  /** Removes the bar, leaving the line empty for what follows. */
  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  get elapsedSeconds(): number {
    return (this.now() - this.started) / 1000;
  }
}
