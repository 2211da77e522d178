import { describe, expect, it } from 'vitest';
import { SessionTable } from './session-table.ts';
import { relaxedSessionShared } from './session-test-settings.ts';
import { SocketSession } from './socket-session.ts';

const SHARED = relaxedSessionShared();
let nextId = 1;

function session(callerKey: string): SocketSession {
  return new SocketSession({
    id: nextId++,
    endpoint: 'mux',
    caller: { kind: 'guest' },
    credential: null,
    shared: SHARED,
    callerKey,
  });
}

describe('SessionTable', () => {
  it('counts upgrading and open sessions per caller, and lists only the open ones', () => {
    const table = new SessionTable();
    const [a1, a2, a3, b1] = [session('a'), session('a'), session('a'), session('b')];
    for (const s of [a1, a2, a3, b1]) table.add(s);
    table.open(a1);
    table.open(a3);
    expect(table.count('a')).toBe(3);
    expect(table.count('b')).toBe(1);
    expect(table.count('c')).toBe(0);
    expect(table.size).toBe(2);
    expect([...table]).toEqual([a1, a3]);
    expect([...table.ofCaller('a')]).toEqual([a1, a3]);
    expect([...table.ofCaller('b')]).toEqual([]);
    table.open(b1);
    expect([...table.ofCaller('b')]).toEqual([b1]);
    expect([...table]).toEqual([a1, a3, b1]);
  });

  it('gives a place back once, whether the session was open or still upgrading', () => {
    const table = new SessionTable();
    const [a1, a2, b1] = [session('a'), session('a'), session('b')];
    for (const s of [a1, a2, b1]) table.add(s);
    table.open(a1);
    table.open(b1);
    expect(table.remove(a1)).toBe(true);
    expect(table.remove(a1)).toBe(false);
    expect(table.remove(a2)).toBe(false);
    expect(table.count('a')).toBe(0);
    expect(table.size).toBe(1);
    // Removing a caller's last of several sessions, then adding again, starts afresh.
    const a3 = session('a');
    table.add(a3);
    expect(table.count('a')).toBe(1);
    expect(table.remove(b1)).toBe(true);
    expect(table.count('b')).toBe(0);
    expect(table.size).toBe(0);
  });

  it('counts a session opened without having been added, so no open socket is missed', () => {
    const table = new SessionTable();
    const a1 = session('a');
    table.open(a1);
    expect(table.count('a')).toBe(1);
    expect([...table]).toEqual([a1]);
  });

  it('does not visit a session removed while iterating', () => {
    const table = new SessionTable();
    const all = [session('a'), session('a'), session('b'), session('c')];
    for (const s of all) table.open(s);
    const visited: SocketSession[] = [];
    for (const s of table) {
      visited.push(s);
      // The first visit ends the others of its caller and the next caller's.
      if (s === all[0]) {
        table.remove(all[1]!);
        table.remove(all[2]!);
      }
    }
    expect(visited).toEqual([all[0], all[3]]);
  });
});
