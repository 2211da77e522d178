import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import { type AwarenessPeer, AwarenessRoom } from './awareness-room.ts';

interface Entry {
  clientId: number;
  clock: number;
  state: unknown;
}

function encode(entries: Entry[]): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const e of entries) {
    encoding.writeVarUint(encoder, e.clientId);
    encoding.writeVarUint(encoder, e.clock);
    encoding.writeVarString(encoder, JSON.stringify(e.state));
  }
  return encoding.toUint8Array(encoder);
}

function decode(update: Uint8Array): Entry[] {
  const decoder = decoding.createDecoder(update);
  return Array.from({ length: decoding.readVarUint(decoder) }, () => ({
    clientId: decoding.readVarUint(decoder),
    clock: decoding.readVarUint(decoder),
    state: JSON.parse(decoding.readVarString(decoder)),
  }));
}

function peer(userId: string, claimKey: string | null = userId): AwarenessPeer & { got: Entry[][] } {
  const got: Entry[][] = [];
  return { userId, claimKey, got, send: (u) => got.push(decode(u)) };
}

describe('AwarenessRoom', () => {
  it('lets the same user take over a client id on reconnect, but not a guest or another user', () => {
    const room = new AwarenessRoom();
    const old = peer('user_a');
    const fresh = peer('user_a');
    const other = peer('user_b');
    const guest1 = peer('guest', null);
    const guest2 = peer('guest', null);
    for (const p of [old, fresh, other, guest1, guest2]) room.join(p);
    room.receive(old, encode([{ clientId: 1, clock: 4, state: { a: 1 } }]));
    room.receive(other, encode([{ clientId: 1, clock: 9, state: { evil: true } }]));
    expect(other.got.at(-1)?.[0]?.state).toEqual({ a: 1, user: { id: 'user_a' } });
    // Reconnects re-announce the same clock.
    room.receive(fresh, encode([{ clientId: 1, clock: 4, state: { a: 2 } }]));
    expect(other.got.at(-1)).toEqual([{ clientId: 1, clock: 4, state: { a: 2, user: { id: 'user_a' } } }]);
    // The old socket leaving no longer removes the state it handed over.
    const before = other.got.length;
    room.leave(old);
    expect(other.got.length).toBe(before);

    room.receive(guest1, encode([{ clientId: 7, clock: 1, state: {} }]));
    room.receive(guest2, encode([{ clientId: 7, clock: 2, state: { hijack: 1 } }]));
    expect(
      room.encodeStates() && decode(room.encodeStates() as Uint8Array).find((e) => e.clientId === 7)?.state,
    ).toEqual({
      user: { id: 'guest' },
    });
  });

  it('ignores stale clocks, non-object states and ids past the per-peer limit', () => {
    const room = new AwarenessRoom({ maxClientsPerPeer: 2 });
    const a = peer('user_a');
    room.join(a);
    room.receive(a, encode([{ clientId: 1, clock: 3, state: { n: 1 } }]));
    room.receive(a, encode([{ clientId: 1, clock: 2, state: { n: 0 } }]));
    room.receive(a, encode([{ clientId: 2, clock: 1, state: 'text' }]));
    room.receive(
      a,
      encode([
        { clientId: 3, clock: 1, state: {} },
        { clientId: 4, clock: 1, state: {} },
      ]),
    );
    const states = decode(room.encodeStates() as Uint8Array);
    expect(states.map((e) => e.clientId).sort()).toEqual([1, 3]);
    expect(states.find((e) => e.clientId === 1)?.state).toEqual({ n: 1, user: { id: 'user_a' } });
  });

  it('lets a peer move to new client ids once it removed old ones (a rebuilt doc), within the limit', () => {
    const room = new AwarenessRoom({ maxClientsPerPeer: 2 });
    const a = peer('user_a');
    room.join(a);
    // Ten resets in a row: each announces a new id and removes the previous one.
    for (let id = 1; id <= 10; id++) {
      room.receive(a, encode([{ clientId: id, clock: 1, state: { n: id } }]));
      if (id < 10) room.receive(a, encode([{ clientId: id, clock: 2, state: null }]));
    }
    const states = decode(room.encodeStates() as Uint8Array);
    expect(states.filter((e) => e.state !== null).map((e) => e.clientId)).toEqual([10]);
    // Live states still count: two live ids fill the limit, a third is stripped.
    room.receive(a, encode([{ clientId: 11, clock: 1, state: { n: 11 } }]));
    room.receive(a, encode([{ clientId: 12, clock: 1, state: { n: 12 } }]));
    const live = decode(room.encodeStates() as Uint8Array).filter((e) => e.state !== null);
    expect(live.map((e) => e.clientId).sort((x, y) => x - y)).toEqual([10, 11]);
  });

  it('refuses malformed updates', () => {
    const room = new AwarenessRoom();
    const a = peer('user_a');
    room.join(a);
    expect(() => room.receive(a, new Uint8Array([1, 1]))).toThrow(
      expect.objectContaining({ kind: 'InvalidMessage' }),
    );
    expect(() => room.receive(a, encode([{ clientId: 1, clock: 1, state: {} }]).slice(0, -1))).toThrow();
    const bad = encoding.createEncoder();
    encoding.writeVarUint(bad, 1);
    encoding.writeVarUint(bad, 1);
    encoding.writeVarUint(bad, 1);
    encoding.writeVarString(bad, '{not json');
    expect(() => room.receive(a, encoding.toUint8Array(bad))).toThrow(
      expect.objectContaining({ kind: 'InvalidMessage' }),
    );
  });
});
