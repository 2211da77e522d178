import {
  type Caller,
  type DocAddress,
  type DocName,
  decide,
  docAddress,
  parseDocName,
  parseKey,
  parseNamespace,
  parseScope,
  type ReadFlag,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import { HTTP_ORIGIN } from '../events/relay-events.ts';
import { deniedError } from '../services/denied-error.ts';
import { parseUserValue } from '../userdata-value.ts';
import { refuseBeforeBody } from './early-denial.ts';
import { flagField, intParam, parseVersionHeader, readJsonObject } from './request.ts';
import { sendEmpty, sendJson } from './respond.ts';
import type { Route, RouteRequest, RouteServices } from './route.ts';

/** Keys a listing returns at most per page. */
const MAX_LIST_LIMIT = 1000;

function addressOf(r: RouteRequest): DocAddress {
  return docAddress(r.params.scope as string, r.params.ns as string, r.params.key as string);
}

/**
 * `GET/POST/DELETE /userdata/<ns>/<SCOPE>/<key>` and `GET /userdata/<ns>/<SCOPE>` (listing).
 * A value is the JSON object held in the document's `Y.Map('data')`, read and written
 * through the object service (the same use case as sync and the runtime), so HTTP writes reach
 * live WebSocket subscribers; its version is the document's head seq.
 */
export function userdataRoutes(s: RouteServices): Route[] {
  const get = async (r: RouteRequest): Promise<void> => {
    const stored = await s.objects.readValue(await r.caller(), addressOf(r), 'http');
    if (!stored) throw new SyncError('NotFound', 'not found');
    sendJson(r.res, 200, stored);
  };

  const post = async (r: RouteRequest): Promise<void> => {
    const address = addressOf(r);
    const caller = await r.caller();
    const ifVersion = parseVersionHeader(r.req, 'if-match');
    await refuseBeforeBody(s, caller, address);
    const body = await readJsonObject(r.req, s.maxBodyBytes);
    if (!Object.hasOwn(body, 'value')) throw new SyncError('BadRequest', 'the body needs a "value" object');
    const value = parseUserValue(body.value);
    const options = {
      read: flagField(body, 'read') as ReadFlag | undefined,
      write: flagField(body, 'write') as WriteFlag | undefined,
      ifVersion,
    };
    sendJson(r.res, 200, await s.objects.writeValue(caller, address, value, options, 'http', HTTP_ORIGIN));
  };

  const del = async (r: RouteRequest): Promise<void> => {
    await s.objects.remove(await r.caller(), addressOf(r), 'http');
    sendEmpty(r.res);
  };

  const list = async (r: RouteRequest): Promise<void> => {
    const scope = parseScope(r.params.scope as string);
    const namespace = parseNamespace(scope, r.params.ns as string);
    const prefix = parsePrefix(r.query.get('prefix'));
    const limit = intParam(r.query, 'limit', 1, MAX_LIST_LIMIT, 100);
    const after = parseCursor(r.query.get('cursor'));
    const caller = await r.caller();
    const base = `${scope}/${namespace}/`;
    // The namespace as a whole: list needs no object, only the scope gate (and the audit).
    const namespaceAddress: DocAddress = {
      kind: 'doc',
      scope,
      namespace,
      key: prefix,
      name: `${base}${prefix}` as DocName,
    };
    const decision = await s.access.decideOn(caller, 'list', namespaceAddress, null, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    const keys = await readableKeys(s, caller, base, prefix, after, limit + 1);
    const more = keys.length > limit;
    const page = keys.slice(0, limit);
    const last = page[page.length - 1];
    sendJson(r.res, 200, { keys: page, cursor: more && last !== undefined ? encodeCursor(last) : null });
  };

  return [
    { pattern: ['userdata', ':ns', ':scope', ':key'], methods: { GET: get, POST: post, DELETE: del } },
    { pattern: ['userdata', ':ns', ':scope'], methods: { GET: list } },
  ];
}

/**
 * Up to `want` keys under `base + prefix` after `after` that `caller` may read: listing
 * filters object by object with `decide()`, it never fails the whole list.
 */
async function readableKeys(
  s: RouteServices,
  caller: Caller,
  base: string,
  prefix: string,
  after: string | undefined,
  want: number,
): Promise<string[]> {
  const keys: string[] = [];
  const chunk = Math.max(100, want);
  let cursor = after === undefined ? undefined : `${base}${after}`;
  const now = s.now();
  for (;;) {
    const rows = await s.store.listObjects({ prefix: `${base}${prefix}`, after: cursor, limit: chunk });
    for (const row of rows) {
      const address = parseDocName(row.name);
      const object = { owner: row.owner, read: row.read, write: row.write };
      if (address.kind === 'doc' && decide({ caller, action: 'read', address, object, now }).allowed) {
        keys.push(address.key);
        if (keys.length >= want) return keys;
      }
    }
    if (rows.length < chunk) return keys;
    cursor = rows[rows.length - 1]?.name;
  }
}

function parsePrefix(raw: string | null): string {
  if (raw === null || raw === '') return '';
  // A prefix is the start of a key: key characters only, but it may end in "/" or a partial segment.
  if (raw.length > 256 || !/^[A-Za-z0-9._~:@/-]+$/.test(raw)) {
    throw new SyncError('BadRequest', 'prefix may only contain A-Z a-z 0-9 . _ ~ : @ / - (at most 256)');
  }
  return raw;
}

function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function parseCursor(raw: string | null): string | undefined {
  if (raw === null || raw === '') return undefined;
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(raw))
    throw new SyncError('BadRequest', 'cursor is not one this relay returned');
  try {
    return parseKey(Buffer.from(raw, 'base64url').toString('utf8'), 'cursor');
  } catch {
    throw new SyncError('BadRequest', 'cursor is not one this relay returned');
  }
}
