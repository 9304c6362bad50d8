/**
 * The layers of src/ (PRINCIPLES.md): crypto → vault → fs and tools → cli. A lower layer
 * never imports an upper one; read from the import statements of every source file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

type Layer = 'crypto' | 'vault' | 'fs' | 'tools' | 'cli' | 'root';

/** What each layer must not import. */
const FORBIDDEN: Readonly<Record<Layer, readonly Layer[]>> = {
  crypto: ['vault', 'fs', 'tools', 'cli', 'root'],
  vault: ['fs', 'tools', 'cli', 'root'],
  fs: ['cli', 'root'],
  tools: ['cli', 'root'],
  cli: ['root'],
  root: [],
};

function layerOf(file: string): Layer {
  const top = relative(SRC, file).split('/')[0]!;
  if (top === 'crypto' || top === 'vault' || top === 'fs' || top === 'tools' || top === 'cli') return top;
  return 'root';
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function importsOf(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push((match[1] ?? match[2] ?? match[3])!);
  }
  return found.filter((spec) => spec.startsWith('.'));
}

/** Files of src/ that sit at its root and are allowed everywhere: leaf helpers with no imports from src/. */
const SHARED_ROOT = new Set(['packageroot.ts']);

describe('layers', () => {
  const files = sourceFiles(SRC);

  it('the import reader sees every form of import', () => {
    const text = `import { a } from './a.js';\nimport type { B } from "../b.js";\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('./e.js');\nimport {\n  f,\n} from './f.js';\n`;
    expect(importsOf(text)).toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js', './f.js']);
  });

  it('no layer imports a layer above it', () => {
    expect(files.length).toBeGreaterThan(40);
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        if (SHARED_ROOT.has(relative(SRC, target))) continue;
        const to = layerOf(target);
        if (FORBIDDEN[from].includes(to)) violations.push(`${relative(SRC, file)} (${from}) imports ${spec} (${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('finds a violation when there is one', () => {
    const cliImport = importsOf(`import { EXIT } from '../cli/exit.js';`)[0]!;
    expect(layerOf(resolve(SRC, 'tools', cliImport).replace(/\.js$/, '.ts'))).toBe('cli');
    expect(FORBIDDEN.tools).toContain('cli');
  });
});
