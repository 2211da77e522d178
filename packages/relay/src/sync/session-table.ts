import type { SocketSession } from './socket-session.ts';

/**
 * The sockets of one sync server, by caller (`SocketSession.callerKey`): how many each caller
 * holds, upgrades in flight included (the per-caller bound), and which are open (the heartbeat,
 * revocations, re-validation, shutdown). One table keyed by caller, not a set of open sessions
 * beside a map of counts: on an idle relay the structures with an entry per socket are among
 * the largest, and each one that grows leaves its outgrown tables behind in the old generation.
 */
export class SessionTable {
  /** A caller's one session itself, or a set once it has had several at a time. */
  readonly #byCaller = new Map<string, SocketSession | Set<SocketSession>>();
  #open = 0;

  /** Open sessions. */
  get size(): number {
    return this.#open;
  }

  /** Sessions `callerKey` holds, open or still upgrading. */
  count(callerKey: string): number {
    const held = this.#byCaller.get(callerKey);
    if (held === undefined) return 0;
    return held instanceof Set ? held.size : 1;
  }

  /** Counts an upgrading session against its caller (it is not open yet). */
  add(session: SocketSession): void {
    if (session.counted) return;
    session.counted = true;
    const key = session.callerKey;
    const held = this.#byCaller.get(key);
    if (held === undefined) this.#byCaller.set(key, session);
    else if (held instanceof Set) held.add(session);
    else this.#byCaller.set(key, new Set([held, session]));
  }

  /** Marks a session open (counting it first if it is not: no open socket may be missed). */
  open(session: SocketSession): void {
    this.add(session);
    if (session.listed) return;
    session.listed = true;
    this.#open += 1;
  }

  /** Gives back the session's place; idempotent. Returns whether it was open. */
  remove(session: SocketSession): boolean {
    if (!session.counted) return false;
    session.counted = false;
    const wasOpen = session.listed;
    if (wasOpen) {
      session.listed = false;
      this.#open -= 1;
    }
    const key = session.callerKey;
    const held = this.#byCaller.get(key);
    if (held === session) this.#byCaller.delete(key);
    else if (held instanceof Set) {
      held.delete(session);
      if (held.size === 0) this.#byCaller.delete(key);
    }
    return wasOpen;
  }

  /** The open sessions of one caller. */
  *ofCaller(callerKey: string): IterableIterator<SocketSession> {
    const held = this.#byCaller.get(callerKey);
    if (held === undefined) return;
    if (!(held instanceof Set)) {
      if (held.listed) yield held;
      return;
    }
    for (const session of held) if (session.listed) yield session;
  }

  /** Every open session; one removed meanwhile is not visited. */
  *[Symbol.iterator](): IterableIterator<SocketSession> {
    for (const held of this.#byCaller.values()) {
      if (!(held instanceof Set)) {
        if (held.listed) yield held;
        continue;
      }
      for (const session of held) if (session.listed) yield session;
    }
  }
}
