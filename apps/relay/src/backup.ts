import { createHash } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SyncError } from '@scopesync/core';
import { AUDIT_ANCHOR_FILE, AUDIT_KEY_FILE, DOCS_DB_FILE, RELAY_DB_FILE } from '@scopesync/relay';
import Database from 'better-sqlite3';

/** The SQLite files of a data dir, in the order they are backed up and restored. */
const DB_FILES = [RELAY_DB_FILE, DOCS_DB_FILE] as const;

/**
 * The audit key and anchor, when they live in the data dir (the default): without the key a
 * restored log cannot be verified. Copied before the databases, so the anchor never names an
 * entry the copied log does not hold (docs/security.md, "Audit chain").
 */
const AUDIT_FILES = [AUDIT_KEY_FILE, AUDIT_ANCHOR_FILE] as const;

/** The file in a backup directory that describes it; written last, so its presence means complete. */
export const MANIFEST_FILE = 'manifest.json';

/** What a backup directory holds, as written to its manifest. */
export interface BackupManifest {
  readonly format: 1;
  /** When the backup began (ISO 8601); every write acknowledged before it is in the backup. */
  readonly started_at: string;
  /** When the last file was copied (ISO 8601). */
  readonly finished_at: string;
  /** One entry per SQLite file: its schema version (`PRAGMA user_version`), size and SHA-256. */
  readonly files: Readonly<Record<string, BackupFile>>;
}

/** One file of a backup. */
export interface BackupFile {
  readonly schema_version: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** Pages per backup step: all of them, so each file is copied in one read transaction. */
const ALL_PAGES = 0x7fffffff;
/** How long a backup waits for a write lock held by the relay (a checkpoint) before failing. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Copies a data dir's SQLite files into `outDir` (created; must be empty) with SQLite's online
 * backup API, safe while a relay writes to them: each file is one consistent snapshot taken
 * after the call began, so every write acknowledged before it is included. Then writes the
 * manifest. The copies are in rollback-journal mode: plain single files, readable anywhere.
 */
export async function backupDataDir(dataDir: string, outDir: string): Promise<BackupManifest> {
  if (!existsSync(join(dataDir, RELAY_DB_FILE))) {
    throw new SyncError('NotFound', `no relay data in ${dataDir} (${RELAY_DB_FILE} is missing)`);
  }
  if (existsSync(outDir) && readdirSync(outDir).length > 0) {
    throw new SyncError('Conflict', `${outDir} is not empty; back up into a new directory`);
  }
  mkdirSync(outDir, { recursive: true });
  const startedAt = new Date();
  const files: Record<string, BackupFile> = {};
  for (const name of AUDIT_FILES.filter((file) => existsSync(join(dataDir, file)))) {
    await copyFile(join(dataDir, name), join(outDir, name));
    chmodSync(join(outDir, name), 0o600);
    files[name] = {
      schema_version: 0,
      bytes: statSync(join(outDir, name)).size,
      sha256: await sha256Of(join(outDir, name)),
    };
  }
  // docs.sqlite is missing only where no relay ran yet (the CLI's `admin create` makes relay.sqlite alone).
  for (const name of DB_FILES.filter((file) => existsSync(join(dataDir, file)))) {
    const partial = join(outDir, `${name}.partial`);
    const source = new Database(join(dataDir, name), {
      readonly: true,
      fileMustExist: true,
      timeout: BUSY_TIMEOUT_MS,
    });
    try {
      // One step for the whole file: a write by the relay between two smaller steps would make
      // SQLite start over, and under steady load it might never finish.
      await source.backup(partial, { progress: () => ALL_PAGES });
    } finally {
      source.close();
    }
    const schemaVersion = finishCopy(partial);
    renameSync(partial, join(outDir, name));
    files[name] = {
      schema_version: schemaVersion,
      bytes: statSync(join(outDir, name)).size,
      sha256: await sha256Of(join(outDir, name)),
    };
  }
  const manifest: BackupManifest = {
    format: 1,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    files,
  };
  writeFileSync(join(outDir, `${MANIFEST_FILE}.partial`), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(join(outDir, `${MANIFEST_FILE}.partial`), join(outDir, MANIFEST_FILE));
  return manifest;
}

/** Options of {@link restoreDataDir}. */
export interface RestoreOptions {
  /** Replace the relay files of a data dir that is not empty. */
  readonly force?: boolean;
}

/**
 * Puts a backup made by {@link backupDataDir} into `dataDir`: checks the manifest and every
 * file's SHA-256, refuses a data dir that is not empty (unless `force`) and one whose files a
 * running relay holds open, then swaps the files in. With `force`, only relay.sqlite,
 * docs.sqlite and their -wal/-shm files are replaced (or removed, when the backup has no
 * docs.sqlite), and the audit key and anchor when the backup has them; other files stay.
 */
export async function restoreDataDir(
  fromDir: string,
  dataDir: string,
  options: RestoreOptions = {},
): Promise<BackupManifest> {
  const manifest = readManifest(fromDir);
  const names = DB_FILES.filter((name) => manifest.files[name] !== undefined);
  const auditNames = AUDIT_FILES.filter((name) => manifest.files[name] !== undefined);
  if (!names.includes(RELAY_DB_FILE))
    throw new SyncError('BadRequest', `${fromDir} holds no ${RELAY_DB_FILE}`);
  for (const name of [...names, ...auditNames]) {
    const file = manifest.files[name];
    const path = join(fromDir, name);
    if (!file || !existsSync(path)) throw new SyncError('NotFound', `${name} is missing from ${fromDir}`);
    if ((await sha256Of(path)) !== file.sha256) {
      throw new SyncError(
        'BadRequest',
        `${path} does not match the manifest's SHA-256: the backup is damaged`,
      );
    }
  }
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0 && !options.force) {
    throw new SyncError('Conflict', `${dataDir} is not empty; pass --force to replace its relay data`);
  }
  mkdirSync(dataDir, { recursive: true });
  assertNotInUse(dataDir);
  for (const name of names) await copyFile(join(fromDir, name), join(dataDir, `${name}.restoring`));
  // Checked again just before the swap: the copy may have taken a while.
  assertNotInUse(dataDir);
  for (const name of DB_FILES) {
    const target = join(dataDir, name);
    // A -wal left by a relay that was killed belongs to the old file; next to the restored
    // one SQLite would replay it.
    rmSync(`${target}-wal`, { force: true });
    rmSync(`${target}-shm`, { force: true });
    // A file the backup does not have goes: the data dir becomes what was backed up.
    if (names.includes(name)) renameSync(`${target}.restoring`, target);
    else rmSync(target, { force: true });
  }
  // The key and anchor that go with the restored log; a data dir keeps its own when the backup has none.
  for (const name of auditNames) {
    const target = join(dataDir, name);
    await copyFile(join(fromDir, name), `${target}.restoring`);
    chmodSync(`${target}.restoring`, 0o600);
    renameSync(`${target}.restoring`, target);
  }
  return manifest;
}

/** Reads and checks a backup's manifest. */
export function readManifest(fromDir: string): BackupManifest {
  const path = join(fromDir, MANIFEST_FILE);
  if (!existsSync(path))
    throw new SyncError('NotFound', `${fromDir} is not a complete backup (no ${MANIFEST_FILE})`);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new SyncError('BadRequest', `${path} is not JSON`, { cause: error });
  }
  if (
    typeof manifest !== 'object' ||
    manifest === null ||
    (manifest as { format?: unknown }).format !== 1 ||
    typeof (manifest as { files?: unknown }).files !== 'object'
  ) {
    throw new SyncError('BadRequest', `${path} is not a scopesync backup manifest (format 1)`);
  }
  return manifest as BackupManifest;
}

/**
 * Throws Conflict when another connection holds one of the data dir's SQLite files open. A
 * connection in WAL mode (every relay, and the CLI's own commands while they run) keeps a
 * shared lock on its file for as long as it is open, so taking an exclusive lock without
 * waiting fails exactly when a relay has the file open, even an idle one.
 */
function assertNotInUse(dataDir: string): void {
  for (const name of DB_FILES) {
    const path = join(dataDir, name);
    if (!existsSync(path)) continue;
    const db = new Database(path, { fileMustExist: true, timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('ROLLBACK');
    } catch (error) {
      if ((error as { code?: unknown }).code === 'SQLITE_BUSY') {
        throw new SyncError(
          'Conflict',
          `${path} is in use (is a relay running on ${dataDir}?); stop it first`,
        );
      }
      throw error;
    } finally {
      db.close();
    }
  }
}

/** Checks a fresh copy, switches it to a rollback journal and returns its schema version. */
function finishCopy(path: string): number {
  const db = new Database(path, { fileMustExist: true });
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok')
      throw new SyncError('Unavailable', `the copy ${path} fails its integrity check: ${String(check)}`);
    db.pragma('journal_mode = DELETE');
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
