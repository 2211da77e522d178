import { parseDocName, SCOPE_FLAGS, SYSTEM_OWNER } from '@scopesync/core';
import { expect } from 'vitest';
import * as Y from 'yjs';
import type { Fixture } from './ws-fuzz-fixture.ts';
import { hex } from './ws-fuzz-frames.ts';

// What the relay keeps of the documents the WebSocket fuzzer must not change: their stored rows
// (and the tables the sync endpoints never touch) and what it serves of them from memory, read
// before the fuzz and compared after it.

/** What the relay stored that the fuzzing callers must not change, read raw. */
export interface Stored {
  /** A digest per protected document and per table the sync endpoints must never touch. */
  readonly digests: Record<string, string>;
  /** Every object's owner, by name. */
  readonly objects: ReadonlyMap<string, string>;
  /** Every object's owner and flags (`owner read write encrypted min_epoch`), by name. */
  readonly meta: ReadonlyMap<string, string>;
  readonly docs: ReadonlySet<string>;
}

/** Reads {@link Stored} from the relay's tables. */
export async function readStored(f: Fixture): Promise<Stored> {
  const stored = f.stored;
  const digests: Record<string, string> = {};
  for (const name of [...f.protectedDocs, ...f.forbiddenNew]) {
    digests[`object ${name}`] = await stored.digest('SELECT * FROM objects WHERE name = ?', name);
    digests[`blob_data ${name}`] = await stored.digest('SELECT * FROM blob_data WHERE name = ?', name);
    digests[`entries ${name}`] = await stored.digest(
      'SELECT * FROM doc_entries WHERE doc = ? ORDER BY seq',
      name,
    );
    digests[`head ${name}`] = await stored.digest('SELECT * FROM doc_heads WHERE doc = ?', name);
  }
  for (const table of ['users', 'api_keys', 'shares', 'key_grants', 'wrapped_keys', 'mod_grants']) {
    digests[`table ${table}`] = await stored.digest(`SELECT * FROM ${table} ORDER BY 1, 2`);
  }
  const pairs = async (sql: string) =>
    (await stored.rows(sql)).map((row) => [String(row[0]), String(row[1])] as const);
  return {
    digests,
    objects: new Map(await pairs('SELECT name, owner FROM objects')),
    meta: new Map(
      await pairs(
        "SELECT name, owner || ' ' || read || ' ' || write || ' ' || (CASE WHEN encrypted THEN 1 ELSE 0 END) || ' ' || min_epoch FROM objects",
      ),
    ),
    // A document exists once it has an entry; `doc_heads` also names one whose entries were
    // removed (the SQLite store writes that table only then, the PostgreSQL one on every append).
    docs: new Set(
      (await stored.rows('SELECT doc FROM doc_entries UNION SELECT doc FROM doc_heads')).map((row) =>
        String(row[0]),
      ),
    ),
  };
}

/** What the relay serves of each protected document from memory: the Yjs state, or the encrypted log. */
export async function served(f: Fixture): Promise<Record<string, string>> {
  const hub = f.relay.relay.hub;
  const out: Record<string, string> = {};
  for (const name of f.protectedDocs) {
    const docName = parseDocName(name).name;
    if (f.encryptedDocs.has(name)) {
      const page = await hub.fetchEncrypted(docName, 0);
      out[name] = `${page.headSeq}:${page.entries.map((e) => `${e.seq}=${hex(e.envelope, 1e6)}`).join(',')}`;
    } else {
      out[name] = await hub.read(docName, (doc) => hex(Y.encodeStateAsUpdate(doc), 1e6));
    }
  }
  return out;
}

/**
 * Expects, after the fuzz, that nothing the fuzzing callers may not write changed since
 * `storedBefore` and `servedBefore`, on disk or in memory: no protected byte, no flag of
 * another's object, no document created by a caller who may not create it.
 */
export async function expectOnlyPermittedChanges(
  f: Fixture,
  storedBefore: Stored,
  servedBefore: Record<string, string>,
): Promise<void> {
  await f.relay.relay.hub.flush();
  const storedAfter = await readStored(f);
  expect(storedAfter.digests).toEqual(storedBefore.digests);
  expect(await served(f)).toEqual(servedBefore);
  const writers = f.actors.flatMap((x) => (x.userId === null ? [] : [x.userId]));
  // New documents: PUBLIC_RW ones, the fuzzing users' own, and new blobs they own.
  const legitimate = (name: string): boolean =>
    name.startsWith('PUBLIC_RW/') ||
    (name.startsWith('blob/') && writers.includes(storedAfter.objects.get(name) ?? '')) ||
    writers.some((u) => name.startsWith(`USER_PUBLIC/${u}/`) || name.startsWith(`USER_PRIVATE/${u}/`));
  // Only an owner (or an admin) sets an object's flags: nobody changed those of others' objects,
  // and PUBLIC_RW objects, old or new, have the scope's defaults.
  for (const [name, meta] of storedBefore.meta) {
    if (!writers.includes(storedBefore.objects.get(name) ?? '')) {
      expect(storedAfter.meta.get(name), `owner and flags of ${name}`).toBe(meta);
    }
  }
  const { read, write } = SCOPE_FLAGS.PUBLIC_RW.defaults;
  for (const [name, meta] of storedAfter.meta) {
    if (name.startsWith('PUBLIC_RW/'))
      expect(meta, `flags of ${name}`).toBe(`${SYSTEM_OWNER} ${read} ${write} 0 0`);
  }
  const created = [...storedAfter.objects.keys(), ...storedAfter.docs].filter(
    (n) => !storedBefore.objects.has(n) && !storedBefore.docs.has(n),
  );
  expect(
    created.filter((n) => !legitimate(n)),
    'documents created by callers who may not',
  ).toEqual([]);
}
