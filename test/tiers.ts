/**
 * Which tier runs each test file (test/*.test.ts). vitest.config.ts makes one project of each
 * tier; test/tiers.test.ts fails when a test file is in no tier or in more than one.
 *
 * - unit: in this process only: crypto, vectors, geometry, names, PlainFs; no FUSE, no other
 *   program started (`npm run test:unit`, well under a minute).
 * - mount: real FUSE mounts through the built CLI (`npm run test:mount`).
 * - integration: other programs: rclone, Syncthing, fio, and the built CLI run as a child
 *   process without a mount (`npm run test:integration`). A CLI test that runs the CLI in
 *   this process belongs in unit.
 */
export const TIERS = {
  unit: [
    'bench-report',
    'cipherio',
    'cli-filter',
    'cli-help',
    'directory',
    'exit-codes',
    'geometry',
    'geometry.native',
    'hostile-fuzz',
    'journal',
    'keystore',
    'keystore.independent',
    'layers',
    'names',
    'names.independent',
    'native',
    'nativekeys',
    'nodetable',
    'nodetable-links',
    'paths',
    'plainfs',
    'plainfs-random',
    'problems',
    'randomaccess',
    'recovery',
    'roundtrip',
    'special-entries',
    'special-files',
    'scrubprogress',
    'sealedfile-fulldisk',
    'seenversions',
    'sync-names',
    'tamper',
    'tiers',
    'tree',
    'v2-file',
    'vectors.v2.independent',
    'unlock',
    'vaultlock',
    'vectors',
    'vectors.independent',
    'xattr.independent',
    'xattrs',
    'cipherio-xattr',
  ],
  mount: ['conformance', 'mount-lock', 'mount-posix', 'hostile-junk', 'hostile-names', 'hostile-paths', 'hostile-perms', 'hostile-readers', 'hostile-secrets', 'mount-faults', 'mount-fstab', 'mount-fulldisk', 'mount-leak', 'mount-messages', 'mount-random', 'mount-semantics', 'mount-smoke', 'mount-times', 'mount-special', 'mount-vault-v1', 'status', 'mount-xattr', 'mount-fallocate'],
  integration: ['autostart', 'backup', 'cli-completion', 'cli-init', 'cli-manpage', 'cli-messages', 'cli-prompts', 'hostile-control', 'hostile-repair', 'install', 'mount-fio', 'scrub', 'sync-live', 'sync-syncthing', 'vault-v1'],
} as const satisfies Record<string, readonly string[]>;

export type Tier = keyof typeof TIERS;

/** The test files of a tier, as paths relative to the repository. */
export function tierFiles(tier: Tier): string[] {
  return TIERS[tier].map((name) => `test/${name}.test.ts`);
}
