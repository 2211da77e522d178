import type { Message } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';
import { DocPresence } from './doc-presence.ts';

/** A presence whose socket is a list of the messages it sent (the edge of this unit). */
function presence(active = true): { presence: DocPresence; sent: Message[]; peer: Awareness } {
  const sent: Message[] = [];
  const p = new DocPresence({ send: (message) => sent.push(message), active: () => active });
  return { presence: p, sent, peer: new Awareness(new Y.Doc()) };
}

/** What the awareness updates among `sent` say, applied to a fresh peer's view. */
function seenBy(peer: Awareness, sent: Message[]): Map<number, unknown> {
  for (const message of sent)
    if (message.type === 'awareness') applyAwarenessUpdate(peer, message.update, 'relay');
  const mine = peer.clientID;
  return new Map([...peer.getStates()].filter(([id]) => id !== mine));
}

describe('DocPresence', () => {
  it('moves to a new awareness of the new doc on rebind, keeping my state and the others’', () => {
    const { presence: p, sent, peer } = presence();
    const first = new Y.Doc();
    const awareness = p.use(first, false);
    awareness.setLocalStateField('user', { name: 'Ada' });
    const other = new Awareness(new Y.Doc());
    other.setLocalStateField('user', { name: 'Bob' });
    p.receive(encodeAwarenessUpdate(other, [other.clientID]));
    expect(seenBy(peer, sent).get(first.clientID)).toEqual({ user: { name: 'Ada' } });

    const second = new Y.Doc();
    p.rebind(second);
    const fresh = p.current as Awareness;
    expect(fresh).not.toBe(awareness);
    expect(fresh.clientID).toBe(second.clientID);
    expect(fresh.getLocalState()).toEqual({ user: { name: 'Ada' } });
    expect(fresh.getStates().get(other.clientID)).toEqual({ user: { name: 'Bob' } });
    // The peer sees the old id leave and the new one arrive: one Ada, never two.
    const seen = seenBy(peer, sent);
    expect(seen.has(first.clientID)).toBe(false);
    expect(seen.get(second.clientID)).toEqual({ user: { name: 'Ada' } });
    // Changes after the move are published under the new id.
    fresh.setLocalStateField('cursor', { anchor: 1, head: 1 });
    expect(seenBy(peer, sent).get(second.clientID)).toEqual({
      user: { name: 'Ada' },
      cursor: { anchor: 1, head: 1 },
    });
    p.destroy();
  });

  it('sends nothing while the subscription is not active, and does not rebind an awareness nobody used', () => {
    const { presence: p, sent } = presence(false);
    p.rebind(new Y.Doc());
    expect(p.current).toBeUndefined();
    p.use(new Y.Doc(), false).setLocalStateField('user', { name: 'Ada' });
    p.rebind(new Y.Doc());
    expect(sent).toEqual([]);
    p.destroy();
  });
});
