import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { afterEach, describe, expect, it } from 'vitest';
import * as authProtocol from 'y-protocols/auth';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { decodeDocFrame, decodeMuxFrame, encodeDocFrame, encodeMuxFrame } from './frame.ts';

/*
 * The single-document endpoint must be byte-for-byte what y-websocket sends and expects:
 * a stock WebsocketProvider frames every message as varUint type + y-protocols payload.
 */

const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const MESSAGE_AUTH = 2;
const MESSAGE_QUERY_AWARENESS = 3;

function yFrame(build: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  build(encoder);
  return encoding.toUint8Array(encoder);
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A document with some content, so that state vectors and updates are not trivial. */
function populatedDoc(text: string): Y.Doc {
  const doc = new Y.Doc();
  cleanups.push(() => doc.destroy());
  doc.getText('t').insert(0, text);
  doc.getMap('data').set('title', 'hello');
  doc.getArray<number>('a').push([1, 2, 3]);
  doc.getText('t').delete(0, 2);
  return doc;
}

describe('byte-for-byte y-protocols compatibility', () => {
  it('encodes SyncStep1 exactly as y-protocols/sync writeSyncStep1', () => {
    const doc = populatedDoc('step one');
    const theirs = yFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC);
      syncProtocol.writeSyncStep1(e, doc);
    });
    const ours = encodeDocFrame({ type: 'sync-step1', stateVector: Y.encodeStateVector(doc) });
    expect(ours).toEqual(theirs);
    expect(decodeDocFrame(theirs)).toEqual({ type: 'sync-step1', stateVector: Y.encodeStateVector(doc) });
  });

  it('encodes SyncStep2 exactly as y-protocols/sync writeSyncStep2, with and without a state vector', () => {
    const doc = populatedDoc('step two');
    const remote = new Y.Doc();
    cleanups.push(() => remote.destroy());
    Y.applyUpdate(remote, Y.encodeStateAsUpdate(doc));
    doc.getText('t').insert(0, 'more ');
    const stateVector = Y.encodeStateVector(remote);
    for (const sv of [undefined, stateVector]) {
      const theirs = yFrame((e) => {
        encoding.writeVarUint(e, MESSAGE_SYNC);
        syncProtocol.writeSyncStep2(e, doc, sv);
      });
      const ours = encodeDocFrame({ type: 'sync-step2', update: Y.encodeStateAsUpdate(doc, sv) });
      expect(ours).toEqual(theirs);
    }
  });

  it('encodes a sync update exactly as y-protocols/sync writeUpdate', () => {
    const doc = populatedDoc('before');
    const updates: Uint8Array[] = [];
    doc.on('update', (update: Uint8Array) => updates.push(update));
    doc.getText('t').insert(0, 'live edit ✍️');
    doc.getMap('data').delete('title');
    expect(updates.length).toBe(2);
    for (const update of updates) {
      const theirs = yFrame((e) => {
        encoding.writeVarUint(e, MESSAGE_SYNC);
        syncProtocol.writeUpdate(e, update);
      });
      expect(encodeDocFrame({ type: 'sync-update', update })).toEqual(theirs);
      expect(decodeDocFrame(theirs)).toEqual({ type: 'sync-update', update });
    }
  });

  it('encodes awareness exactly as y-protocols/awareness with y-websocket framing', () => {
    const doc = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(doc);
    cleanups.push(() => {
      awareness.destroy();
      doc.destroy();
    });
    awareness.setLocalState({ user: { name: 'Zoë', color: '#ff0' }, cursor: { anchor: 3 } });
    const update = awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]);
    const theirs = yFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS);
      encoding.writeVarUint8Array(e, update);
    });
    expect(encodeDocFrame({ type: 'awareness', update })).toEqual(theirs);
    const decoded = decodeDocFrame(theirs);
    expect(decoded).toEqual({ type: 'awareness', update });

    // The decoded update applies to another peer's awareness.
    const other = new awarenessProtocol.Awareness(new Y.Doc());
    cleanups.push(() => other.destroy());
    if (decoded.type !== 'awareness') throw new Error('unexpected type');
    awarenessProtocol.applyAwarenessUpdate(other, decoded.update, 'test');
    expect(other.getStates().get(doc.clientID)).toEqual(awareness.getLocalState());
  });

  it('encodes permission denied exactly as y-protocols/auth writePermissionDenied', () => {
    for (const reason of ['', 'read-only access to USER_PUBLIC/user_0123456789abcdef/x', 'ünïcödé 🔒']) {
      const theirs = yFrame((e) => {
        encoding.writeVarUint(e, MESSAGE_AUTH);
        authProtocol.writePermissionDenied(e, reason);
      });
      expect(encodeDocFrame({ type: 'permission-denied', reason })).toEqual(theirs);
      expect(decodeDocFrame(theirs)).toEqual({ type: 'permission-denied', reason });
    }
  });

  it('encodes query-awareness as the single varUint 3', () => {
    const theirs = yFrame((e) => encoding.writeVarUint(e, MESSAGE_QUERY_AWARENESS));
    expect(encodeDocFrame({ type: 'query-awareness' })).toEqual(theirs);
    expect(decodeDocFrame(theirs)).toEqual({ type: 'query-awareness' });
  });
});

describe('y-protocols reads what we write', () => {
  it('syncs two documents through our frames and y-protocols readers, as y-websocket would', () => {
    const server = populatedDoc('server text');
    const client = new Y.Doc();
    cleanups.push(() => client.destroy());
    client.getText('t').insert(0, 'client text ');

    // The client's y-protocols SyncStep1 arrives at us...
    const step1 = yFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC);
      syncProtocol.writeSyncStep1(e, client);
    });
    const request = decodeDocFrame(step1);
    if (request.type !== 'sync-step1') throw new Error('expected sync-step1');
    // ...we answer with our SyncStep2, read by y-protocols' own reader on the client.
    const answer = encodeDocFrame({
      type: 'sync-step2',
      update: Y.encodeStateAsUpdate(server, request.stateVector),
    });
    const decoder = decoding.createDecoder(answer);
    expect(decoding.readVarUint(decoder)).toBe(MESSAGE_SYNC);
    const reply = encoding.createEncoder();
    expect(syncProtocol.readSyncMessage(decoder, reply, client, 'relay')).toBe(
      syncProtocol.messageYjsSyncStep2,
    );
    expect(client.getText('t').toString()).toContain('rver text');
    expect(client.getMap('data').get('title')).toBe('hello');

    // And a live update the server forwards applies on the client the same way.
    const updates: Uint8Array[] = [];
    server.on('update', (update: Uint8Array) => updates.push(update));
    server.getMap('data').set('live', true);
    const live = encodeDocFrame({ type: 'sync-update', update: updates[0] as Uint8Array });
    const liveDecoder = decoding.createDecoder(live);
    decoding.readVarUint(liveDecoder);
    syncProtocol.readSyncMessage(liveDecoder, encoding.createEncoder(), client, 'relay');
    expect(client.getMap('data').get('live')).toBe(true);
  });

  it('answers a y-protocols SyncStep1 reader with the same bytes it would produce itself', () => {
    const server = populatedDoc('abc');
    const ours = encodeDocFrame({ type: 'sync-step1', stateVector: Y.encodeStateVector(new Y.Doc()) });
    const decoder = decoding.createDecoder(ours);
    decoding.readVarUint(decoder);
    const reply = encoding.createEncoder();
    syncProtocol.readSyncMessage(decoder, reply, server, null);
    // y-protocols writes a bare sync message (no outer type): prefix it as y-websocket does.
    const theirReply = yFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC);
      encoding.writeUint8Array(e, encoding.toUint8Array(reply));
    });
    expect(decodeDocFrame(theirReply)).toEqual({ type: 'sync-step2', update: Y.encodeStateAsUpdate(server) });
  });

  it('hands y-protocols/auth a permission-denied reason it reads back', () => {
    const frame = encodeDocFrame({ type: 'permission-denied', reason: 'nope' });
    const decoder = decoding.createDecoder(frame);
    expect(decoding.readVarUint(decoder)).toBe(MESSAGE_AUTH);
    const reasons: string[] = [];
    authProtocol.readAuthMessage(decoder, new Y.Doc(), (_y, reason) => reasons.push(reason));
    expect(reasons).toEqual(['nope']);
  });

  it('frames mux messages as the doc name followed by the y-protocols bytes', () => {
    const doc = populatedDoc('mux');
    const name = 'PUBLIC_RW/_/guestbook';
    const inner = yFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC);
      syncProtocol.writeSyncStep1(e, doc);
    });
    const theirs = yFrame((e) => {
      encoding.writeVarString(e, name);
      encoding.writeUint8Array(e, inner);
    });
    const message = { type: 'sync-step1', stateVector: Y.encodeStateVector(doc) } as const;
    expect(encodeMuxFrame(name, message)).toEqual(theirs);
    expect(decodeMuxFrame(theirs)).toEqual({ docName: name, message });
  });
});
