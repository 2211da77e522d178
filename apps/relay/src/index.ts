export type { GuestbookEntry } from './example-mod.ts';
export { GUESTBOOK_DOC, GuestbookMod } from './example-mod.ts';
export type { CliIo } from './run-cli.ts';
export { runCli } from './run-cli.ts';
