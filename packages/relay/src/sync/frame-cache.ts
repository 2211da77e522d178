import { type DocName, encodeDocFrame, encodeMuxFrame, type Message } from '@scopesync/core';
import { SharedFrame } from './shared-frame.ts';
import type { Subscription } from './subscription.ts';

/** One message encoded lazily for each endpoint kind, each framed once for all its sockets. */
export class FrameCache {
  readonly #name: DocName;
  readonly #message: Message;
  #doc: SharedFrame | null = null;
  #mux: SharedFrame | null = null;

  constructor(name: DocName, message: Message) {
    this.#name = name;
    this.#message = message;
  }

  /** The frame for `sub`'s endpoint kind, encoded and framed on first use. */
  for(sub: Subscription): SharedFrame {
    if (sub.session.endpoint === 'doc') {
      this.#doc ??= new SharedFrame(encodeDocFrame(this.#message as Parameters<typeof encodeDocFrame>[0]));
      return this.#doc;
    }
    this.#mux ??= new SharedFrame(encodeMuxFrame(this.#name, this.#message));
    return this.#mux;
  }
}
