import { createClient, memoryClientStore } from '@scopesync/client';
import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { itemsOf } from './sim-clients.ts';

// What a relay serves of a document, read by a fresh connection: the truth every client of the
// document must end up holding.

const READ_TIMEOUT_MS = 15_000;

/** The items `url` (a relay or a proxy) serves in plaintext doc `name`, read with `key` over /sync. */
export async function servedItems(url: string, key: string, name: string): Promise<string[]> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sync?key=${encodeURIComponent(key)}`);
  ws.on('error', () => undefined);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no state of ${name} from ${url}`)), READ_TIMEOUT_MS);
      const send = (message: Message): void => ws.send(encodeMuxFrame(name, message));
      ws.on('open', () => send({ type: 'subscribe', mode: 'plaintext', sinceSeq: 0 }));
      ws.on('close', (code: number, reason: Buffer) => {
        clearTimeout(timer);
        // The code says who closed it and why: 1006 without a close frame (killed, or the
        // heartbeat terminated it), 4xxx with the relay's reason.
        const why = `${code}${reason.length > 0 ? ` "${reason.toString()}"` : ''}`;
        reject(new Error(`the socket to ${url} closed (${why}) before the state of ${name}`));
      });
      ws.on('message', (data: Buffer) => {
        const { message } = decodeMuxFrame(new Uint8Array(data));
        if (message.type === 'permission') {
          if (message.access === 'read' || message.access === 'read-write')
            send({ type: 'sync-step1', stateVector: new Uint8Array([0]) });
          else reject(new Error(`reading ${name}: ${message.access}`));
        }
        if (message.type === 'sync-step2') {
          clearTimeout(timer);
          const doc = new Y.Doc();
          Y.applyUpdate(doc, message.update);
          resolve(itemsOf(doc));
          doc.destroy();
        }
      });
    });
  } finally {
    ws.removeAllListeners('close');
    ws.close();
  }
}

/**
 * The items of private (end-to-end encrypted) doc `name`, as another device of its user reads
 * it from `url`: a fresh client made from the user's recovery phrase, on an empty store. The
 * handle's errors go to `errors`.
 */
export async function privateItems(
  url: string,
  user: { readonly apiKey?: string | undefined; readonly recoveryPhrase?: string | undefined },
  name: string,
  errors: string[] = [],
): Promise<string[]> {
  if (user.recoveryPhrase === undefined) throw new Error(`no recovery phrase for ${name}`);
  const device = await createClient({
    url,
    ...(user.apiKey === undefined ? { deviceName: 'chaos-checker' } : { apiKey: user.apiKey }),
    recoveryPhrase: user.recoveryPhrase,
    WebSocket,
    store: memoryClientStore(),
    backoff: { initialMs: 50, maxMs: 500 },
  });
  try {
    const handle = device.doc(name);
    // Entries it refused (a key it could not find, a bad signature) leave the doc short without
    // failing the read: collected, so a short read says why.
    handle.on('error', (error) => errors.push(String(error)));
    await Promise.race([
      handle.whenSynced,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no sync of ${name}`)), READ_TIMEOUT_MS).unref(),
      ),
    ]);
    return itemsOf(handle.doc);
  } finally {
    await device.close();
  }
}
