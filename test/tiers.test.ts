import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './build.js';
import { TIERS } from './tiers.js';

describe('test tiers', () => {
  it('every test file is in exactly one tier, and every tier entry is a test file', async () => {
    const files = (await readdir(join(REPO, 'test'))).filter((f) => f.endsWith('.test.ts')).map((f) => f.slice(0, -'.test.ts'.length));
    const listed = Object.entries(TIERS).flatMap(([tier, names]) => names.map((name) => ({ tier, name })));
    const tiersOf = (name: string) => listed.filter((e) => e.name === name).map((e) => e.tier);
    const problems = [
      ...files.filter((f) => tiersOf(f).length !== 1).map((f) => `test/${f}.test.ts is in ${tiersOf(f).length === 0 ? 'no tier' : `tiers ${tiersOf(f).join(', ')}`}`),
      ...listed.filter((e) => !files.includes(e.name)).map((e) => `tier ${e.tier} lists test/${e.name}.test.ts, which does not exist`),
    ];
    expect(problems, 'edit test/tiers.ts').toEqual([]);
    expect(files.length).toBeGreaterThan(0);
  });
});
