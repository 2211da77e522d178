import type { DocHandle, SyncClient } from '@scopesync/client';
import type * as Y from 'yjs';
import { onDocChange } from './on-doc-change.ts';

/** How often a document the relay reported absent is asked for again. */
const RETRY_MS = 3000;

/**
 * Keeps a document someone else creates open for reading — the announcement before an admin
 * first writes it. The relay answers a subscription to a document that does not exist yet,
 * and that the caller may not create, with "no access" (it does not tell absent from hidden),
 * and the client closes the handle; this opens it again every few seconds and on reconnect,
 * so the page shows the document as soon as it exists.
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
