/** Paths in commands the user is told to run, quoted for a POSIX shell so they can be pasted. */

/** `text` as one shell word: as it is when nothing in it is special, else in single quotes. */
export function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
