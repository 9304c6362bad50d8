/**
 * docs/FORMAT.md §10.4's sync-client table, checked against src/vault/syncclients.ts in both
 * directions; and docs/NAMES.md, checked by encrypting: the length formulas of encrypted names, the
 * long-name thresholds for the default limit and for `--max-name-length 64`, the alphabet,
 * and several rows of the path tables (the longest plaintext names for which every path of a
 * given depth still fits a service's limit, and the first length that does not).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classify } from '../src/vault/ciphernames.js';
import { DirectoryDecoder } from '../src/vault/directory.js';
import { NameCipher, ROOT_DIR_ID } from '../src/vault/names.js';
import { isSyncClientFile, SYNC_CLIENTS, type NamePattern } from '../src/vault/syncclients.js';

const names = new NameCipher(new Uint8Array(randomBytes(64)), new Uint8Array(randomBytes(32)));
const decoders = new Map<number, DirectoryDecoder>();
const decoder = (limit: number) => decoders.get(limit) ?? decoders.set(limit, new DirectoryDecoder(names, limit)).get(limit)!;

/** docs/NAMES.md: ⌈8(16 + n)/5⌉ for files, ⌈8(24 + n)/5⌉ for folders, 30 beyond the limit. */
const formula = (bytes: number, dir: boolean, limit: number) => {
  const direct = Math.ceil((8 * ((dir ? 24 : 16) + bytes)) / 5);
  return direct <= limit ? direct : 30;
};

/** A name of `chars` characters: ASCII, or a three-byte UTF-8 character (U+4E00…). */
const nameOf = (chars: number, threeByte: boolean, salt = 0) =>
  threeByte ? Array.from({ length: chars }, (_, i) => String.fromCodePoint(0x4e00 + ((i * 7 + salt) % 20000))).join('') : Array.from({ length: chars }, (_, i) => String.fromCharCode(97 + ((i + salt) % 26))).join('');

/** The encrypted path of `depth` components (depth − 1 folders, then a file), all named `name`-like, below the vault root. */
function cipherPath(limit: number, depth: number, chars: number, threeByte: boolean): string {
  const parts: string[] = [];
  let parent: Uint8Array = ROOT_DIR_ID;
  for (let level = 0; level < depth; level++) {
    const name = nameOf(chars, threeByte, level);
    if (level < depth - 1) {
      const id = names.deriveDirId(parent, name);
      parts.push(decoder(limit).cipherNameFor(parent, name, id).cipherName);
      parent = id;
    } else {
      parts.push(decoder(limit).cipherNameFor(parent, name).cipherName);
    }
  }
  return parts.join('/');
}

describe('encrypted name lengths (docs/NAMES.md)', () => {
  it('follow the formulas for every name length from 1 to 255 bytes, files and folders, both limits', () => {
    for (const limit of [200, 64]) {
      for (let bytes = 1; bytes <= 255; bytes++) {
        const name = 'n'.repeat(bytes);
        const file = decoder(limit).cipherNameFor(ROOT_DIR_ID, name).cipherName;
        const dir = decoder(limit).cipherNameFor(ROOT_DIR_ID, name, names.deriveDirId(ROOT_DIR_ID, name)).cipherName;
        expect(file.length, `file name of ${bytes} bytes, limit ${limit}`).toBe(formula(bytes, false, limit));
        expect(dir.length, `folder name of ${bytes} bytes, limit ${limit}`).toBe(formula(bytes, true, limit));
      }
    }
  });

  it('switch to the long-name form exactly at 109/101 bytes (default) and 24/16 bytes (--max-name-length 64)', () => {
    const cases = [
      { limit: 200, fileMax: 109, dirMax: 101 },
      { limit: 64, fileMax: 24, dirMax: 16 },
    ];
    for (const { limit, fileMax, dirMax } of cases) {
      const file = (bytes: number) => decoder(limit).cipherNameFor(ROOT_DIR_ID, 'f'.repeat(bytes));
      const dir = (bytes: number) => decoder(limit).cipherNameFor(ROOT_DIR_ID, 'd'.repeat(bytes), names.deriveDirId(ROOT_DIR_ID, 'd'.repeat(bytes)));
      expect(file(fileMax).cipherName).toHaveLength(limit);
      expect(file(fileMax).sidecar).toBeUndefined();
      expect(file(fileMax + 1).cipherName).toMatch(/^[a-z2-7]{26}\.sfl$/);
      expect(file(fileMax + 1).sidecar?.name).toMatch(/^[a-z2-7]{26}\.sfn$/);
      expect(dir(dirMax).cipherName).toHaveLength(limit);
      expect(dir(dirMax + 1).cipherName).toMatch(/^[a-z2-7]{26}\.sfl$/);
      // Three-byte characters: 36 / 33 characters at the default limit, 8 / 5 at 64.
      const chars = (bytes: number) => Math.floor(bytes / 3);
      expect(decoder(limit).cipherNameFor(ROOT_DIR_ID, nameOf(chars(fileMax), true)).cipherName.length).toBeLessThanOrEqual(limit);
      expect(decoder(limit).cipherNameFor(ROOT_DIR_ID, nameOf(chars(fileMax) + 1, true)).cipherName).toMatch(/\.sfl$/);
    }
    // The examples of the page.
    expect(decoder(200).cipherNameFor(ROOT_DIR_ID, 'a').cipherName).toHaveLength(28);
    expect(decoder(200).cipherNameFor(ROOT_DIR_ID, 'a'.repeat(20)).cipherName).toHaveLength(58);
    expect(decoder(255).cipherNameFor(ROOT_DIR_ID, 'a'.repeat(255)).cipherName).toHaveLength(30);
    expect(Math.ceil((8 * (16 + 255)) / 5)).toBe(434);
  });

  it('use only a–z and 2–7 (plus .sfl/.sfn for long names), never a reserved or case-colliding name', () => {
    const seen = new Map<string, string>();
    const samples = ['CON', 'nul', 'desktop.ini', '~$report.docx', ' leading space', 'trailing dot.', 'Résumé.pdf', '報告書.txt', '😀 emoji', 'a:b*c?d"e<f>g|h\\i', '.hidden', '_vti_'];
    for (let i = 0; i < 200; i++) samples.push(randomBytes(1 + (i % 120)).toString('latin1').replace(/[/\0]/g, 'x'));
    for (const limit of [200, 64]) {
      for (const name of samples) {
        if (name === '.' || name === '..' || Buffer.byteLength(name) > 255) continue;
        for (const dir of [false, true]) {
          const { cipherName, sidecar } = decoder(limit).cipherNameFor(ROOT_DIR_ID, name, dir ? names.deriveDirId(ROOT_DIR_ID, name) : undefined);
          expect(cipherName).toMatch(/^(?:[a-z2-7]{28,}|[a-z2-7]{26}\.sfl)$/);
          if (sidecar) expect(sidecar.content).toMatch(/^[a-z2-7]+\n$/);
          expect(cipherName.length).toBeLessThanOrEqual(limit);
          const folded = `${limit}:${cipherName.toLowerCase()}`;
          const other = seen.get(folded);
          if (other !== undefined) expect(other).toBe(`${dir}:${name}`);
          seen.set(folded, `${dir}:${name}`);
        }
      }
    }
  });
});

describe('path tables (docs/NAMES.md): longest names for which every path of a depth fits', () => {
  /** Rows of the tables: limit L, budget B, depth d, the longest name in characters (ASCII, 3-byte). */
  const rows = [
    { service: 'OneDrive', L: 200, B: 394, depth: 3, ascii: 60, threeByte: 20 },
    { service: 'OneDrive', L: 200, B: 394, depth: 5, ascii: 26, threeByte: 8 },
    { service: 'SharePoint', L: 200, B: 366, depth: 3, ascii: 54, threeByte: 18 },
    { service: 'Windows MAX_PATH', L: 200, B: 229, depth: 3, ascii: 25, threeByte: 8 },
    { service: 'Dropbox', L: 200, B: 230, depth: 5, ascii: 5, threeByte: 1 },
    { service: 'Google Drive on Windows', L: 200, B: 241, depth: 5, ascii: 7, threeByte: 2 },
    { service: 'Windows MAX_PATH', L: 64, B: 229, depth: 5, ascii: 5, threeByte: 1 },
  ];
  for (const row of rows) {
    it(`${row.service}, limit ${row.L}, depth ${row.depth}: ${row.ascii} ASCII / ${row.threeByte} three-byte characters`, () => {
      for (const [threeByte, chars] of [[false, row.ascii], [true, row.threeByte]] as const) {
        // Encrypted lengths only grow with the name until the long form: checking the longest
        // name checks every shorter one too.
        expect(cipherPath(row.L, row.depth, chars, threeByte).length, `${chars} characters fit`).toBeLessThanOrEqual(row.B);
        expect(cipherPath(row.L, row.depth, chars + 1, threeByte).length, `${chars + 1} characters do not`).toBeGreaterThan(row.B);
      }
    });
  }

  it('"any" cells: every name fits when depth·(L + 1) − 1 ≤ B, and names in long form always cost 31 per level', () => {
    // OneDrive with --max-name-length 64, depth 5: the worst case is 5 folders/files of exactly 64 characters.
    expect(cipherPath(64, 5, 24, false).length).toBeLessThanOrEqual(5 * 65 - 1);
    expect(5 * 65 - 1).toBeLessThanOrEqual(394);
    for (let chars = 1; chars <= 85; chars++) expect(cipherPath(64, 5, chars, true).length).toBeLessThanOrEqual(394);
    for (let chars = 1; chars <= 255; chars += 7) expect(cipherPath(64, 5, chars, false).length).toBeLessThanOrEqual(394);
    // Windows with --max-name-length 64, depth 3: any name.
    for (let chars = 1; chars <= 255; chars++) expect(cipherPath(64, 3, chars, false).length).toBeLessThanOrEqual(229);
    // Long names only: 255-byte names at depth 5 cost 5·31 − 1 = 154 characters.
    expect(cipherPath(200, 5, 255, false)).toHaveLength(154);
    expect(cipherPath(200, 5, 85, true)).toHaveLength(154);
  });
});

describe('sync-client files (docs/FORMAT.md §10.4 and src/vault/syncclients.ts)', () => {
  /** One service's row: each cell as the sorted list of its `code` items with their notes. */
  type Row = { markers: string[]; leftovers: string[]; folderNames: string[] };
  const show = (pattern: NamePattern) => (typeof pattern === 'string' ? pattern : String(pattern));

  function formatTable(): Map<string, Row> {
    const text = readFileSync(new URL('../docs/FORMAT.md', import.meta.url), 'utf8');
    const section = text.slice(text.indexOf('### 10.4'), text.indexOf('### 10.5'));
    const lines = section.split('\n');
    const header = lines.findIndex((line) => line.startsWith('| Service | Markers | Leftovers | Default folder names |'));
    expect(header).toBeGreaterThan(0);
    const rows = new Map<string, Row>();
    for (const line of lines.slice(header + 2)) {
      if (!line.startsWith('|')) break;
      // Cells split at unescaped pipes; `\|` inside a cell is a pipe.
      const cells = line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim().replaceAll('\\|', '|'));
      expect(cells, line).toHaveLength(4);
      const items = (cell: string) => {
        const found = [...cell.matchAll(/`([^`]+)`( \((?:file|folder|in the home folder)\))?/g)].map((m) => m[1]! + (m[2] ?? ''));
        // Nothing in a cell but its items, commas and spaces.
        expect(cell.replace(/`[^`]+`( \((?:file|folder|in the home folder)\))?/g, '').replace(/[ ,]/g, ''), cell).toBe('');
        return found.sort();
      };
      const [service, markers, leftovers, folderNames] = cells as [string, string, string, string];
      expect(rows.has(service), service).toBe(false);
      rows.set(service, { markers: items(markers), leftovers: items(leftovers), folderNames: items(folderNames) });
    }
    return rows;
  }

  function moduleTable(): Map<string, Row> {
    const note = { file: ' (file)', dir: ' (folder)', entry: '' };
    return new Map(
      SYNC_CLIENTS.map((client) => [
        client.service,
        {
          markers: client.markers.map((m) => show(m.name) + note[m.kind]).sort(),
          leftovers: client.leftovers.map(show).sort(),
          folderNames: client.folderNames.map((f) => show(f.name) + (f.inHomeOnly ? ' (in the home folder)' : '')).sort(),
        },
      ]),
    );
  }

  it("FORMAT.md's table lists exactly the module's services, markers, leftovers and folder names", () => {
    const doc = formatTable();
    const code = moduleTable();
    expect([...doc.keys()].sort()).toEqual([...code.keys()].sort());
    for (const [service, row] of code) expect(doc.get(service), service).toEqual(row);
    for (const [service, row] of doc) expect(code.get(service), service).toEqual(row);
  });

  it('every marker and leftover is a sync-client file, in any directory; folder names and sealfs names are not', () => {
    const samples = [
      '.stfolder', '.stignore', '.stversions', '.syncthing.report.txt.tmp', '~syncthing~report.txt.tmp',
      '.dropbox', '.dropbox.cache', '.dropbox.attr', '.849C9593-D756-4E56-8D6E-42412F2A707B', '.tmp.drivedownload', '.tmp.driveupload',
      '.sync_5a3b7c9d1e2f.db', '._sync_5a3b7c9d1e2f.db', '._sync_5A3B7C9D1E2F.db', '._sync_5a3b7c9d1e2f.db-wal', '.sync_5a3b7c9d1e2f.db-shm',
      '.owncloudsync.log', '.nextcloudsync.log', '.owncloudsync.log.1', '.nextcloudsync.log.12', '.sync-exclude.lst',
      '.sync', '.debris', 'desktop.ini', 'Desktop.ini', 'Thumbs.db', 'thumbs.db', '.DS_Store', 'Icon\r',
    ];
    for (const name of samples) {
      expect(isSyncClientFile(name), JSON.stringify(name)).toBe(true);
      expect(classify(name, false).type, JSON.stringify(name)).toBe('sync-client');
      expect(classify(name, true).type, JSON.stringify(name)).toBe('sync-client');
    }
    const not = ['Dropbox', 'OneDrive', 'Box', 'sync_abc.db', '.sync_.db', '.sync_xyz.db', '.sync_abc.db-journal', '.owncloudsync.log.old', '.stfolder2', 'Icon', 'sealfs.vault', 'a'.repeat(28)];
    for (const name of not) expect(isSyncClientFile(name), JSON.stringify(name)).toBe(false);
  });
});
