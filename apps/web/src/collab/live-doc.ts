import type { DocHandle, SyncClient } from '@scopesync/client';
import type * as Y from 'yjs';
import { onDocChange } from './on-doc-change.ts';

/** How long to wait before opening a document again after its handle closed (deleted, revoked). */
const RETRY_MS = 3000;

/**
 * Keeps a document someone else creates open for reading — the announcement before an admin
 * first writes it. A subscription to a document that does not exist yet (and that the caller
 * may not create) waits: the handle stays open (permission none, "not found") and syncs as soon
 * as the document is created. Only when the handle closes for good — the document was deleted,
 * or access revoked — is it opened again (after a pause, or at once on reconnect), to wait for
 * the next version.
 */
export class LiveDoc {
  readonly #client: SyncClient;
  readonly #name: string;
  readonly #onChange: (doc: Y.Doc) => void;
  readonly #onOpen: (handle: DocHandle) => void;
  #handle: DocHandle | undefined;
  #stopChange: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #stopStatus: () => void;

  /** Opens `name`; `onChange` runs after every change, `onOpen` with each handle opened. */
  constructor(
    client: SyncClient,
    name: string,
    onChange: (doc: Y.Doc) => void,
    onOpen: (handle: DocHandle) => void = () => undefined,
  ) {
    this.#client = client;
    this.#name = name;
    this.#onChange = onChange;
    this.#onOpen = onOpen;
    this.#stopStatus = client.on('status', (status) => {
      if (status === 'online' && !this.#handle) this.#open();
    });
    this.#open();
  }

  /** The open handle, if the document is open right now. */
  get handle(): DocHandle | undefined {
    return this.#handle;
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopStatus();
    clearTimeout(this.#timer);
    this.#stopChange?.();
    await this.#handle?.release();
    this.#handle = undefined;
  }

  #open(): void {
    if (this.#closed || this.#handle) return;
    clearTimeout(this.#timer);
    const handle = this.#client.doc(this.#name);
    this.#handle = handle;
    this.#stopChange = onDocChange(handle, () => this.#onChange(handle.doc));
    this.#onOpen(handle);
    handle.on('closed', () => {
      this.#stopChange?.();
      this.#handle = undefined;
      if (!this.#closed) this.#timer = setTimeout(() => this.#open(), RETRY_MS);
    });
  }
}
