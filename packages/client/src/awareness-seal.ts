import { SyncError } from '@scopesync/core';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { fromBase64, toBase64Url } from './base64.ts';

// Awareness (cursors, names) of an end-to-end encrypted document, sealed under its document
// key. An awareness update is y-protocols' list of (client id, clock, JSON state); the relay must
// still see client ids, clocks and a JSON object per state (it binds each state to its sender by
// writing `user.id` into it). So each state's JSON is replaced by `{"sealed": "<envelope>"}`,
// the envelope holding DOMAIN ‖ the state's JSON, sealed and signed like an edit. The domain
// prefix keeps the two apart: an awareness envelope replayed into the document log is not a Yjs
// update, and a document envelope replayed as awareness lacks the prefix, so both are refused.

const DOMAIN = 'scopesync:awareness:v1\0';

interface Entry {
  readonly clientId: number;
  readonly clock: number;
  readonly state: string;
}

function read(update: Uint8Array): Entry[] {
  const decoder = decoding.createDecoder(update);
  const count = decoding.readVarUint(decoder);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({
      clientId: decoding.readVarUint(decoder),
      clock: decoding.readVarUint(decoder),
      state: decoding.readVarString(decoder),
    });
  }
  return entries;
}

function write(entries: readonly Entry[]): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const e of entries) {
    encoding.writeVarUint(encoder, e.clientId);
    encoding.writeVarUint(encoder, e.clock);
    encoding.writeVarString(encoder, e.state);
  }
  return encoding.toUint8Array(encoder);
}

/** An awareness update whose every state is sealed with `seal` (removals, `null`, stay as they are). */
export async function sealAwarenessUpdate(
  update: Uint8Array,
  seal: (plaintext: Uint8Array) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  const entries = await Promise.all(
    read(update).map(async (e) => {
      if (e.state === 'null') return e;
      const envelope = await seal(new TextEncoder().encode(DOMAIN + e.state));
      return { ...e, state: JSON.stringify({ sealed: toBase64Url(envelope) }) };
    }),
  );
  return write(entries);
}

/**
 * The awareness update with every sealed state opened by `open` (which verifies its author), the
 * relay's `user.id` binding kept. A state that is not sealed, or does not open, is dropped:
 * presence of an encrypted document comes only from its members.
 */
export async function openAwarenessUpdate(
  update: Uint8Array,
  open: (envelope: Uint8Array) => Promise<Uint8Array>,
): Promise<{ update: Uint8Array; refused: number }> {
  let refused = 0;
  const opened = await Promise.all(
    read(update).map(async (e): Promise<Entry | null> => {
      if (e.state === 'null') return e;
      try {
        const outer = JSON.parse(e.state) as { sealed?: unknown; user?: { id?: unknown } };
        if (typeof outer.sealed !== 'string')
          throw new SyncError('Forbidden', 'awareness state is not sealed');
        const text = new TextDecoder().decode(await open(fromBase64(outer.sealed, 'sealed awareness')));
        if (!text.startsWith(DOMAIN)) throw new SyncError('Forbidden', 'not an awareness envelope');
        const inner = JSON.parse(text.slice(DOMAIN.length)) as Record<string, unknown>;
        if (typeof inner !== 'object' || inner === null) throw new SyncError('Forbidden', 'not a state');
        // Who sent it is the relay's word (it authenticated the socket); the rest is the member's.
        const user = { ...(inner.user as object | undefined), id: outer.user?.id };
        return { ...e, state: JSON.stringify({ ...inner, user }) };
      } catch {
        refused++;
        return null;
      }
    }),
  );
  return { update: write(opened.filter((e): e is Entry => e !== null)), refused };
}
