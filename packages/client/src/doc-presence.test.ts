import type { Message } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';
import { DocPresence } from './doc-presence.ts';

/** A presence whose socket is a list of the messages it sent (the edge of this unit). */
function presence(active = true): { presence: DocPresence; sent: Message[]; peer: Awareness } {
  const sent: Message[] = [];
  const p = new DocPresence({
    send: (message) => sent.push(message),
    active: () => active,
    // A plaintext doc: states go and come as they are.
    seal: async (update) => update,
    open: async (update) => update,
    failed: (error) => {
      throw error;
    },
  });
  return { presence: p, sent, peer: new Awareness(new Y.Doc()) };
}

/** Lets the presence's queued sends (sealing is asynchronous) reach `sent`. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** What the awareness updates among `sent` say, applied to a fresh peer's view. */
function seenBy(peer: Awareness, sent: Message[]): Map<number, unknown> {
  for (const message of sent)
    if (message.type === 'awareness') applyAwarenessUpdate(peer, message.update, 'relay');
  const mine = peer.clientID;
  return new Map([...peer.getStates()].filter(([id]) => id !== mine));
}

describe('DocPresence', () => {
  it('moves to a new awareness of the new doc on rebind, keeping my state and the others’', async () => {
    const { presence: p, sent, peer } = presence();
    const first = new Y.Doc();
    const awareness = p.use(first, false);
    awareness.setLocalStateField('user', { name: 'Ada' });
    const other = new Awareness(new Y.Doc());
    other.setLocalStateField('user', { name: 'Bob' });
    await p.receive(encodeAwarenessUpdate(other, [other.clientID]));
    await settle();
    expect(seenBy(peer, sent).get(first.clientID)).toEqual({ user: { name: 'Ada' } });

    const second = new Y.Doc();
    p.rebind(second);
    const fresh = p.current as Awareness;
    expect(fresh).not.toBe(awareness);
    expect(fresh.clientID).toBe(second.clientID);
    expect(fresh.getLocalState()).toEqual({ user: { name: 'Ada' } });
    expect(fresh.getStates().get(other.clientID)).toEqual({ user: { name: 'Bob' } });
    // The peer sees the old id leave and the new one arrive: one Ada, never two.
    await settle();
    const seen = seenBy(peer, sent);
    expect(seen.has(first.clientID)).toBe(false);
    expect(seen.get(second.clientID)).toEqual({ user: { name: 'Ada' } });
    // Changes after the move are published under the new id.
    fresh.setLocalStateField('cursor', { anchor: 1, head: 1 });
    await settle();
    expect(seenBy(peer, sent).get(second.clientID)).toEqual({
      user: { name: 'Ada' },
      cursor: { anchor: 1, head: 1 },
    });
    p.destroy();
  });

  it('sends nothing while the subscription is not active, and does not rebind an awareness nobody used', async () => {
    const { presence: p, sent } = presence(false);
    p.rebind(new Y.Doc());
    expect(p.current).toBeUndefined();
    p.use(new Y.Doc(), false).setLocalStateField('user', { name: 'Ada' });
    p.rebind(new Y.Doc());
    await settle();
    expect(sent).toEqual([]);
    p.destroy();
  });
});
