import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/**
 * One encoded frame that many sockets receive (a live update, an envelope): its WebSocket
 * framing — the bytes a server puts on the wire, RFC 6455, one unmasked binary fragment — is
 * built once, on first use, and every socket gets the same buffer in a single write. Sending
 * the payload through `ws.send` instead costs each reader socket a header buffer of its own,
 * a cork, two buffered writes and a `writev` (about 1.5 KB of garbage per socket and send, so
 * with ten readers the young generation fills, and an edit lands in its collection, a third
 * sooner).
 */
export class SharedFrame {
  /** The frame's payload, as `ws.send` would take it. */
  readonly bytes: Uint8Array;
  #wire: Buffer | null = null;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** The payload framed as one final binary WebSocket message from a server. */
  get wire(): Buffer {
    this.#wire ??= frameBinaryMessage(this.bytes);
    return this.#wire;
  }
}

/** Frames `payload` as one final, unmasked binary message (what a server sends). */
export function frameBinaryMessage(payload: Uint8Array): Buffer {
  const length = payload.byteLength;
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerBytes + length);
  out[0] = 0x82; // FIN, opcode 2 (binary)
  if (length < 126) {
    out[1] = length;
  } else if (length < 65_536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    // Frames are bounded far below 2^53 (the socket's buffer bound), so the high word is 0..2^21.
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  out.set(payload, headerBytes);
  return out;
}

/** What `ws` keeps of an open socket; read to know whether its sender may be bypassed. */
interface WsInternals {
  readonly _socket?: Socket | null;
  readonly _sender?: {
    readonly _state?: unknown;
    readonly _queue?: unknown[];
    readonly _firstFragment?: unknown;
  } | null;
}

function internalsOf(ws: WebSocket): WsInternals {
  return ws as unknown as WsInternals;
}

/** The TCP socket under `ws` (`ws` keeps it private), or null once it is gone. */
export function tcpSocketOf(ws: WebSocket): Socket | null {
  return internalsOf(ws)._socket ?? null;
}

/**
 * Writes an already framed message straight to the WebSocket's TCP socket, after everything
 * `ws` has written so far: only when `ws`'s sender has nothing of its own under way (no
 * compression, no queued or fragmented message), so the bytes on the wire stay whole frames in
 * send order. Returns false, having written nothing, otherwise — the caller sends through
 * `ws.send`. `done` runs once the bytes were handed to the kernel (or the write failed).
 */
export function writeFramed(
  ws: WebSocket,
  frame: SharedFrame,
  done: (error?: Error | null) => void,
): boolean {
  if (ws.extensions !== '') return false;
  const { _socket: socket, _sender: sender } = internalsOf(ws);
  if (!socket || !sender || socket.destroyed || !socket.writable) return false;
  // ws's Sender: state 0 is DEFAULT (not deflating, not reading a blob); with an empty queue
  // every earlier send is already in the socket, and a first fragment means no message is open.
  if (sender._state !== 0 || sender._queue?.length !== 0 || sender._firstFragment !== true) return false;
  socket.write(frame.wire, done);
  return true;
}
