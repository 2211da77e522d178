import { decodeDocFrame, decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import WebSocket from 'ws';
import { decodeAwareness, encodeAwareness, encodeFrame, hex } from './ws-fuzz-frames.ts';

// The WebSocket fuzzer's sockets: a client that records and decodes every frame the relay sends
// and how it closes, and the probes that mark "the relay is done with every earlier frame".

/** How long a fuzzing socket waits for an answer before the run fails. */
export const ANSWER_TIMEOUT_MS = 10_000;

/** A frame the relay sent, decoded; `docName` is null on a single-document socket. */
export interface Received {
  readonly docName: string | null;
  readonly message: Message;
}

/** A fuzzing socket: records and decodes what the relay sends, and how it closes. */
export class FuzzSocket {
  /** Every frame the relay sent, in order. */
  readonly inbox: Received[] = [];
  /** How the socket closed, once it has. */
  closed: { code: number; reason: string } | null = null;
  /** Frames from the relay that core's readers reject: the relay must never send one. */
  readonly garbled: string[] = [];
  #wake: Array<() => void> = [];

  constructor(
    readonly ws: WebSocket,
    readonly mux: boolean,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const bytes = new Uint8Array(data);
      try {
        if (!isBinary) throw new Error('a text frame');
        if (mux) this.inbox.push(decodeMuxFrame(bytes));
        else this.inbox.push({ docName: null, message: decodeDocFrame(bytes) });
      } catch (error) {
        this.garbled.push(`${hex(bytes)}: ${String(error)}`);
      }
      this.#notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.#notify();
    });
    ws.on('error', () => undefined);
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** Index of the first frame from `from` on matching `match`; 'closed' when the socket closed first. */
  async until(from: number, match: (f: Received) => boolean, what: string): Promise<number | 'closed'> {
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      for (let i = from; i < this.inbox.length; i++) if (match(this.inbox[i] as Received)) return i;
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms: ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Closes the socket and waits for the closing handshake. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close();
    await this.until(this.inbox.length, () => false, 'closing handshake');
  }
}

/** Opens a socket, or resolves with the HTTP status the upgrade was refused with. */
export function open(url: string, mux: boolean): Promise<FuzzSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const socket = new FuzzSocket(ws, mux);
    ws.once('open', () => resolve(socket));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', (error) => reject(error));
  });
}

/**
 * The probe of a single-document socket: an awareness update of its own client id with a new
 * clock. The relay echoes accepted awareness to its sender, so the echo marks "every earlier
 * frame is done".
 */
export class DocProbe {
  #clock = 0;

  constructor(
    readonly socket: FuzzSocket,
    readonly clientId: number,
  ) {}

  /** Sends the probe; the index of its echo, or 'closed'. */
  probe(): Promise<number | 'closed'> {
    const clock = ++this.#clock;
    const from = this.socket.inbox.length;
    const json = JSON.stringify({ user: { name: 'probe' } });
    const update = encodeAwareness([{ clientId: this.clientId, clock, json }]);
    if (!this.socket.closed) this.socket.ws.send(encodeFrame(null, { type: 'awareness', update }));
    return this.socket.until(
      from,
      (f) =>
        f.message.type === 'awareness' &&
        (decodeAwareness(f.message.update) ?? []).some(
          (e) => e.clientId === this.clientId && e.clock === clock,
        ),
      'the echo of the probe awareness',
    );
  }
}

let probes = 0;

/** The probe of a multiplexed socket: an unsubscribe with an invalid name, always answered with an error. */
export function muxProbe(socket: FuzzSocket): Promise<number | 'closed'> {
  const name = `~probe-${++probes}`;
  const from = socket.inbox.length;
  if (!socket.closed) socket.ws.send(encodeMuxFrame(name, { type: 'unsubscribe' }));
  return socket.until(from, (f) => f.docName === name && f.message.type === 'error', 'the probe error');
}
