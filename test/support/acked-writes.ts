import { type DocName, decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import WebSocket from 'ws';
import * as Y from 'yjs';

// What the durability tests share: a raw multiplexed socket, a stream of tracked updates that
// records which ones the relay acknowledged, and a read of what a relay then serves.

/** A multiplexed socket that records every frame it receives. */
export async function openMux(url: string, key: string) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sync?key=${key}`);
  const frames: Array<{ docName: string; message: Message }> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    frames.push(decodeMuxFrame(new Uint8Array(data)));
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async <T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> => {
    for (;;) {
      const i = frames.findIndex((f) => f.message.type === type);
      if (i >= 0) return frames.splice(i, 1)[0]?.message as Extract<Message, { type: T }>;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const send = (docName: string, message: Message): void => {
    if (ws.readyState === ws.OPEN) ws.send(encodeMuxFrame(docName, message));
  };
  /** Resolves once `check` holds, checked after every frame. */
  const until = (check: () => boolean): Promise<void> =>
    new Promise<void>((resolve) => {
      const poll = (): void => {
        if (check()) resolve();
        else waiters.push(poll);
      };
      poll();
    });
  return { ws, frames, next, send, until, closed };
}

/** A socket opened by {@link openMux}. */
export type MuxConnection = Awaited<ReturnType<typeof openMux>>;

/**
 * Streams tracked updates to `name` (already subscribed read-write on `mux`): update i appends
 * the number i to the array `items`, with `window` updates unacknowledged at most, until the
 * socket closes or `stop()`. `acked` holds the refs (= numbers) the relay acknowledged.
 */
export function streamAckedWrites(
  mux: MuxConnection,
  name: DocName,
  options: { readonly window?: number; readonly nextTick?: (fn: () => void) => void } = {},
) {
  const window = options.window ?? 20;
  const nextTick = options.nextTick ?? ((fn: () => void) => setImmediate(fn));
  const local = new Y.Doc();
  const items = local.getArray<number>('items');
  const acked = new Set<number>();
  let sent = 0;
  let writing = true;
  mux.ws.on('message', (data: Buffer) => {
    const { message } = decodeMuxFrame(new Uint8Array(data));
    if (message.type === 'ack') acked.add(message.ref);
  });
  const pump = (): void => {
    if (!writing || mux.ws.readyState !== mux.ws.OPEN) return;
    while (sent - acked.size < window) {
      sent += 1;
      let update: Uint8Array | undefined;
      local.once('update', (u: Uint8Array) => {
        update = u;
      });
      items.push([sent]);
      mux.send(name, { type: 'tracked-update', ref: sent, update: update as Uint8Array });
    }
    nextTick(pump);
  };
  pump();
  return {
    acked,
    stop: (): void => {
      writing = false;
    },
  };
}

/** The numbers a relay serves in `name`'s `items`, read by a fresh subscription of `key`. */
export async function servedItems(url: string, key: string, name: DocName): Promise<Set<number>> {
  const reader = await openMux(url, key);
  try {
    reader.send(name, { type: 'subscribe', mode: 'plaintext', sinceSeq: 0 });
    const permission = await reader.next('permission');
    if (permission.access !== 'read-write') throw new Error(`the reader was answered ${permission.access}`);
    reader.send(name, { type: 'sync-step1', stateVector: new Uint8Array([0]) });
    const doc = new Y.Doc();
    Y.applyUpdate(doc, (await reader.next('sync-step2')).update);
    return new Set(doc.getArray<number>('items').toArray());
  } finally {
    reader.ws.close();
  }
}
