export type { BackupFile, BackupManifest, RestoreOptions } from './backup.ts';
export { backupDataDir, MANIFEST_FILE, readManifest, restoreDataDir } from './backup.ts';
export type { GuestbookEntry } from './example-mod.ts';
export { GUESTBOOK_DOC, GuestbookMod } from './example-mod.ts';
export type { CliIo } from './run-cli.ts';
export { runCli } from './run-cli.ts';
export type { LogLevel, Setting } from './settings.ts';
export { SETTINGS } from './settings.ts';
