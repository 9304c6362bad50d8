/**
 * What sealfs knows about the sync clients that carry a vault: the entries by which each
 * marks a folder it syncs, the default names of its synced folder, and the other files it
 * leaves in the folders it syncs. One table; everything else derives from it: the names a
 * cipher directory may hold besides the vault's own (never entries, never reported), the
 * warning when a key store sits in a synced folder, and what an "empty" folder may hold.
 * docs/FORMAT.md §10.4 shows the same table; test/sync-names.test.ts checks that they agree.
 */

/** An exact name, or a pattern for a family of names. */
export type NamePattern = string | RegExp;

export interface SyncClient {
  readonly service: string;
  /**
   * Entries the client writes into the root of every folder it syncs (file, directory or
   * either): finding one in a folder or an ancestor marks a synced folder.
   */
  readonly markers: readonly { readonly kind: 'file' | 'dir' | 'entry'; readonly name: NamePattern }[];
  /** Default names of the synced folder itself; `inHomeOnly`: only directly in the home folder (a generic name). */
  readonly folderNames: readonly { readonly name: NamePattern; readonly inHomeOnly?: boolean }[];
  /** Other files it leaves in the folders it syncs: journals, logs, temporary and version files. */
  readonly leftovers: readonly NamePattern[];
}

export const SYNC_CLIENTS: readonly SyncClient[] = [
  {
    // Every shared folder has a `.stfolder` marker (a directory; a file in old versions).
    // Files are downloaded to `.syncthing.NAME.tmp` (`~syncthing~NAME.tmp` on Windows).
    service: 'Syncthing',
    markers: [{ kind: 'entry', name: '.stfolder' }],
    folderNames: [],
    leftovers: ['.stignore', '.stversions', /^\.syncthing\..*\.tmp$/, /^~syncthing~.*\.tmp$/],
  },
  {
    // The desktop client keeps a `.dropbox` FILE (JSON with the namespace id) and a
    // `.dropbox.cache` directory in the Dropbox root. (`~/.dropbox` is a DIRECTORY, the
    // client's own settings in the home folder; it does not mark a synced folder.)
    service: 'Dropbox',
    markers: [
      { kind: 'file', name: '.dropbox' },
      { kind: 'dir', name: '.dropbox.cache' },
    ],
    folderNames: [{ name: /^Dropbox( \(.+\))?$/ }],
    leftovers: ['.dropbox.attr'],
  },
  {
    // The Windows and macOS clients write this hidden GUID-named file into the root; the
    // default folder is `OneDrive` or `OneDrive - <organisation>` (also the default
    // `sync_dir` of the Linux `onedrive` client).
    service: 'OneDrive',
    markers: [{ kind: 'file', name: '.849C9593-D756-4E56-8D6E-42412F2A707B' }],
    folderNames: [{ name: /^OneDrive( - .+)?$/ }],
    leftovers: [],
  },
  {
    // Backup and Sync / Drive for desktop: transfer folders in the root, and the folders
    // "Google Drive", "My Drive" and macOS's "GoogleDrive-<account>".
    service: 'Google Drive',
    markers: [
      { kind: 'entry', name: '.tmp.drivedownload' },
      { kind: 'entry', name: '.tmp.driveupload' },
    ],
    folderNames: [{ name: /^(Google Drive|My Drive|GoogleDrive-.+)$/ }],
    leftovers: [],
  },
  {
    // Box Sync's default folder is "Box Sync", Box Drive's is "~/Box" (macOS File Provider
    // mode: "Box-Box"). Box writes no marker file; "Box" counts only in the home folder.
    service: 'Box',
    markers: [],
    folderNames: [{ name: /^(Box Sync|Box-Box)$/ }, { name: 'Box', inHomeOnly: true }],
    leftovers: [],
  },
  {
    // The desktop clients keep their sync journal, an SQLite database, in the root:
    // `._sync_<hex>.db` (`.sync_<hex>.db` where a name cannot start with `._`), <hex> from a
    // hash of the account and folder, with SQLite's `-wal` and `-shm` files next to it; and,
    // when enabled, a sync log, rotated to `.N`. `.sync-exclude.lst` holds local ignore rules.
    service: 'Nextcloud/ownCloud',
    markers: [
      { kind: 'file', name: /^\._?sync_[0-9a-f]+\.db$/i },
      { kind: 'file', name: '.owncloudsync.log' },
      { kind: 'file', name: '.nextcloudsync.log' },
    ],
    folderNames: [],
    leftovers: [/^\._?sync_[0-9a-f]+\.db-(wal|shm)$/i, /^\.(owncloud|nextcloud)sync\.log\.\d+$/, '.sync-exclude.lst'],
  },
  {
    // A `.sync` directory (holding ID, IgnoreList, StreamsList) in each shared folder.
    service: 'Resilio Sync',
    markers: [{ kind: 'dir', name: '.sync' }],
    folderNames: [],
    leftovers: [],
  },
  {
    // The MEGA desktop app: the `.debris` rubbish folder in each synced folder.
    service: 'MEGA',
    markers: [{ kind: 'dir', name: '.debris' }],
    folderNames: [],
    leftovers: [],
  },
  {
    // Not a sync client: what file managers write into any folder they show.
    service: 'Windows, macOS',
    markers: [],
    folderNames: [],
    leftovers: [/^desktop\.ini$/i, /^Thumbs\.db$/i, '.DS_Store', /^Icon\r$/],
  },
];

export function matchesName(pattern: NamePattern, name: string): boolean {
  return typeof pattern === 'string' ? pattern === name : pattern.test(name);
}

/** How a sync client marks the folders it manages, one row per marker (see SyncClient). */
export interface SyncMarker {
  readonly service: string;
  /**
   * 'file' / 'dir' / 'entry': an entry of that type (entry = either) whose name matches,
   * found inside an ancestor of the key location. 'name': the ancestor itself is named so.
   */
  readonly kind: 'file' | 'dir' | 'entry' | 'name';
  readonly match: NamePattern;
  /** For 'name' markers: only when the ancestor is directly in the home folder. */
  readonly inHomeOnly?: boolean;
}

/**
 * Every marker of every service. A match is a warning, not a refusal: names can collide,
 * and a missing marker proves nothing.
 */
export const SYNC_MARKERS: readonly SyncMarker[] = SYNC_CLIENTS.flatMap((client) => [
  ...client.markers.map((m) => ({ service: client.service, kind: m.kind, match: m.name })),
  ...client.folderNames.map((f) => ({ service: client.service, kind: 'name' as const, match: f.name, ...(f.inHomeOnly ? { inHomeOnly: true } : {}) })),
]);

const SYNC_CLIENT_FILES: readonly NamePattern[] = SYNC_CLIENTS.flatMap((client) => [...client.markers.map((m) => m.name), ...client.leftovers]);

/**
 * Whether `name` is a sync client's (or a file manager's) own file: a marker or a leftover.
 * Such names are never vault entries: they never show in the plaintext view, are not
 * reported, and do not make a folder "not empty".
 */
export function isSyncClientFile(name: string): boolean {
  return SYNC_CLIENT_FILES.some((pattern) => matchesName(pattern, name));
}
