/**
 * The page of browser-token.test.ts: the scopesync client in Chromium signed in with an app
 * token (no API key, no device registration), driven through `window.api`.
 */
import { createClient, type DocHandle, type SyncClient } from '@scopesync/client';

interface TokenPageApi {
  /** Signs in with the token the test set, writes `text` into the user's doc; resolves once acked. */
  run(token: string, text: string): Promise<{ userId: string | undefined; status: string; protocol: string }>;
}

const relay = new URLSearchParams(location.search).get('relay') ?? '';
let client: SyncClient | undefined;
/** The subprotocol the relay selected on the client's socket, as the browser saw it. */
let selected = '';

/** The browser's WebSocket, recording the protocol the relay answered with. */
class RecordingWebSocket extends WebSocket {
  constructor(url: string, protocols?: string[]) {
    super(url, protocols);
    this.addEventListener('open', () => {
      selected = this.protocol;
    });
  }
}

const api: TokenPageApi = {
  async run(token, text) {
    client = await createClient({
      url: relay,
      token: async () => token,
      WebSocket: RecordingWebSocket,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    const doc: DocHandle = client.doc(`USER_PUBLIC/${client.userId}/browser-token`);
    await doc.whenSynced;
    await doc.transact((y) => y.getMap('data').set('text', text));
    await doc.whenAcked();
    return { userId: client.userId, status: client.status, protocol: selected };
  },
};

(globalThis as unknown as { api: TokenPageApi }).api = api;
