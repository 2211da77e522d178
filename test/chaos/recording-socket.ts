import { decodeDocFrame, decodeMuxFrame, type Message } from '@scopesync/core';
import { WebSocket } from 'ws';

// A WebSocket class that records every frame its sockets receive, with the time it arrived:
// handed to our client (`WebSocket` option) and to the stock client (`WebSocketPolyfill`), it
// is what the permission checker replays against the ACL history.

/** One frame a client received. */
export interface Receipt {
  /** Epoch ms of arrival. */
  readonly at: number;
  readonly doc: string;
  readonly message: Message;
  readonly bytes: Uint8Array;
}

/** The document a single-document socket (`/sync/<name>`) is about, from its URL. */
function docOfUrl(url: string): string | null {
  const path = new URL(url).pathname;
  if (!path.startsWith('/sync/')) return null;
  return decodeURIComponent(path.slice('/sync/'.length));
}

/** A `ws` WebSocket subclass whose sockets push each received frame, decoded, into `sink`. */
export function recordingWebSocket(sink: (receipt: Receipt) => void): typeof WebSocket {
  return class RecordingWebSocket extends WebSocket {
    constructor(address: string | URL | null, ...rest: unknown[]) {
      super(address as string | URL, ...(rest as []));
      const url = String(address);
      const single = docOfUrl(url);
      this.on('message', (data: Buffer) => {
        const at = Date.now();
        const bytes = new Uint8Array(data);
        try {
          if (single === null) {
            const { docName, message } = decodeMuxFrame(bytes);
            sink({ at, doc: docName, message, bytes });
          } else sink({ at, doc: single, message: decodeDocFrame(bytes), bytes });
        } catch {
          // Not ours to judge here: the fuzz scenario checks what the relay sends.
        }
      });
    }
  };
}
