import type { SyncClient } from '@scopesync/client';
import type { SyncStatus } from './sync-status.ts';

/** What every section of the tour gets: the signed-up client and the shared status bar. */
export interface TourContext {
  readonly client: SyncClient;
  /** The signed-up user (the tour only runs for registered devices). */
  readonly userId: string;
  /** Counts unsynced changes of the docs a section registers with it. */
  readonly sync: SyncStatus;
}

/** One step of the tour: a page of the app with its place in the navigation. */
export interface TourSection {
  /** The URL hash that shows it (`#notes`). */
  readonly id: string;
  readonly title: string;
  /** The scope it demonstrates, shown under the title in the navigation. */
  readonly hint: string;
  readonly element: HTMLElement;
  /** Called each time the section is shown (to refresh what cannot be pushed live). */
  onShow?(): void;
}
