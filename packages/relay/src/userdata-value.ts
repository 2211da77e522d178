import { SyncError } from '@scopesync/core';
import type * as Y from 'yjs';

// A userdata value is a JSON object whose top-level fields live in the document's
// `Y.Map('data')`, each field a plain JSON value (docs/wire-protocol.md, "Userdata values
// inside a document"). The HTTP routes and the runtime read and write it through these.

/** The name of the map that holds a userdata value's fields. */
export const USERDATA_MAP = 'data';

/** The value held in `doc`: its data map's fields as a plain object (empty when none). */
export function readUserValue(doc: Y.Doc): Record<string, unknown> {
  const map = doc.getMap<unknown>(USERDATA_MAP);
  // fromEntries defines own properties, so a field named "__proto__" stays a field.
  return Object.fromEntries([...map.entries()].map(([k, v]) => [k, toJson(v)]));
}

/**
 * Replaces the value in `doc` by `value`: fields not in it are deleted, changed fields set,
 * unchanged fields left alone (so rewriting the same value produces no update). Call inside
 * a DocHub transaction.
 */
export function writeUserValue(doc: Y.Doc, value: Record<string, unknown>): void {
  const map = doc.getMap<unknown>(USERDATA_MAP);
  for (const key of [...map.keys()]) {
    if (!Object.hasOwn(value, key)) map.delete(key);
  }
  for (const [key, field] of Object.entries(value)) {
    if (!map.has(key) || JSON.stringify(toJson(map.get(key))) !== JSON.stringify(field)) map.set(key, field);
  }
}

/** Checks that `value` is a JSON object (not an array, not null). Throws BadRequest otherwise. */
export function parseUserValue(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SyncError('BadRequest', 'value must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** A field as plain JSON: shared types someone put into the map over sync become their JSON form. */
function toJson(value: unknown): unknown {
  if (
    value !== null &&
    typeof value === 'object' &&
    'toJSON' in value &&
    typeof value.toJSON === 'function'
  ) {
    return (value as { toJSON(): unknown }).toJSON();
  }
  return value;
}
