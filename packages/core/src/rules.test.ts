import { afterAll, describe, expect, it } from 'vitest';
import {
  type Address,
  blobAddress,
  docAddress,
  parseModName,
  parseUserId,
  SCOPES,
  type Scope,
  SYSTEM_OWNER,
} from './address.ts';
import { SyncError } from './errors.ts';
import { Level } from './levels.ts';
import {
  ACTIONS,
  type Action,
  type Caller,
  decide,
  flagsForWrite,
  type ModGrant,
  type ObjectMeta,
  ownerForCreate,
  type ReadFlag,
  type ShareLevel,
  type WriteFlag,
} from './rules.ts';

// Every expected answer below is written from DESIGN.md §1 (scope table, object permissions,
// mods, blobs and shares, audit) and, where DESIGN is silent, from the choices documented in
// rules.ts. None of it is computed by calling decide().

const OWNER = 'user_00000000000000a1'; // owns the USER_* namespace under test and the user-owned blob
const OTHER = 'user_00000000000000b2';
const MODERATOR = 'user_00000000000000c3';
const ADMIN = 'user_00000000000000d4';
const DECOY = 'user_00000000000000e5'; // holds a read_write share on every blob: someone else's share grants nothing
const NOW = 1_700_000_000_000;
const KEY = 'board/1';
const TARGET_MOD = 'chess';
const CALLER_MOD = 'bot';

const ALL_SCOPES: readonly Scope[] = [
  'PUBLIC_READ',
  'PUBLIC_RW',
  'USER_PUBLIC',
  'USER_PRIVATE',
  'SERVER_SCOPE',
  'MOD_DATA',
];
const ALL_ACTIONS: readonly Action[] = ['read', 'write', 'delete', 'list', 'share'];

// ---------------------------------------------------------------------------------------------
// Callers, each with what DESIGN says about them.

/** What the spec needs to know about a caller; kept apart from the `Caller` handed to decide(). */
type Who =
  | { readonly kind: 'guest' }
  | { readonly kind: 'user'; readonly id: string; readonly level: number }
  | { readonly kind: 'runtime' }
  /** `owns`: the mod is `chess` itself; `grantAllows`: what its grants allow on MOD_DATA/chess/board/1. */
  | { readonly kind: 'mod'; readonly owns: boolean; readonly grantAllows: ReadonlySet<Action> };

interface CallerCase {
  readonly name: string;
  readonly caller: Caller;
  readonly who: Who;
}

const none = new Set<Action>();
const readPerm = new Set<Action>(['read', 'list']); // "read denies write"
const writePerm = new Set<Action>(['read', 'list', 'write']); // "write denies delete"
const fullPerm = new Set<Action>(['read', 'list', 'write', 'delete']);
// A key-limited grant whose keys miss the object still passes the namespace gate for listing:
// listing filters per object afterwards (rules.ts choice).
const listOnly = new Set<Action>(['list']);

function grant(permission: ModGrant['permission'], extra: Partial<ModGrant> = {}): ModGrant {
  return { source: CALLER_MOD, target: TARGET_MOD, permission, ...extra };
}

function modCase(name: string, grants: ModGrant[], grantAllows: ReadonlySet<Action>): CallerCase {
  return {
    name,
    caller: { kind: 'mod', mod: parseModName(CALLER_MOD), grants },
    who: { kind: 'mod', owns: false, grantAllows },
  };
}

function userCase(name: string, id: string, level: Level): CallerCase {
  return { name, caller: { kind: 'user', userId: parseUserId(id), level }, who: { kind: 'user', id, level } };
}

const CALLERS: readonly CallerCase[] = [
  { name: 'guest', caller: { kind: 'guest' }, who: { kind: 'guest' } },
  userCase('owner', OWNER, Level.User),
  userCase('other user', OTHER, Level.User),
  userCase('moderator', MODERATOR, Level.Moderator),
  userCase('admin', ADMIN, Level.Admin),
  { name: 'runtime', caller: { kind: 'runtime' }, who: { kind: 'runtime' } },
  {
    name: 'owning mod',
    caller: { kind: 'mod', mod: parseModName(TARGET_MOD), grants: [] },
    who: { kind: 'mod', owns: true, grantAllows: none },
  },
  modCase('mod without grant', [], none),
  modCase('mod with a grant to another mod', [grant('full', { target: 'poker' })], none),
  modCase('mod holding a grant issued to another source', [grant('full', { source: 'poker' })], none),
  modCase('mod with read grant', [grant('read')], readPerm),
  modCase('mod with write grant', [grant('write')], writePerm),
  modCase('mod with full grant', [grant('full')], fullPerm),
  modCase('mod with read grant, keys match', [grant('read', { keys: ['board/*'] })], readPerm),
  modCase('mod with write grant, exact key matches', [grant('write', { keys: ['x', KEY] })], writePerm),
  modCase('mod with full grant, keys match', [grant('full', { keys: ['board/*'] })], fullPerm),
  modCase('mod with read grant, keys miss', [grant('read', { keys: ['scores/*'] })], listOnly),
  modCase('mod with write grant, keys miss', [grant('write', { keys: ['board/10', 'board'] })], listOnly),
  modCase('mod with full grant, keys miss', [grant('full', { keys: ['board/2'] })], listOnly),
  modCase('mod with expired read grant', [grant('read', { expiresAt: NOW - 1 })], none),
  modCase('mod with expired write grant', [grant('write', { expiresAt: NOW - 60_000 })], none),
  modCase('mod with full grant expiring now', [grant('full', { expiresAt: NOW })], none),
  modCase('mod with full grant expiring later', [grant('full', { expiresAt: NOW + 1 })], fullPerm),
  modCase(
    'mod with expired full grant and live read grant',
    [grant('full', { expiresAt: 1 }), grant('read')],
    readPerm,
  ),
];

// ---------------------------------------------------------------------------------------------
// The spec, written from DESIGN §1.

interface Expected {
  readonly allowed: boolean;
  readonly crossUser: boolean;
  readonly hideExistence: boolean;
}

interface Role {
  readonly me: string | null;
  /** The caller is the user whose USER_* namespace this is. */
  readonly nsOwner: boolean;
  /** Moderator or Admin. */
  readonly staff: boolean;
  readonly admin: boolean;
}

type Column = 'read' | 'write' | 'delete';

/** DESIGN §1 scope table, client callers (guest and users). MOD_DATA is for mods only. */
const SCOPE_TABLE: Record<Scope, Record<Column, (r: Role) => boolean>> = {
  // read: everyone (Guest too) | write/delete: Admin, server runtime
  PUBLIC_READ: { read: () => true, write: (r) => r.admin, delete: (r) => r.admin },
  // read: everyone | write/delete: everyone (Guest too)
  PUBLIC_RW: { read: () => true, write: () => true, delete: () => true },
  // read: everyone | write/delete: owner; Moderator and Admin (audited)
  USER_PUBLIC: { read: () => true, write: (r) => r.nsOwner || r.staff, delete: (r) => r.nsOwner || r.staff },
  // read: owner only | write/delete: owner only; Admin may delete (audited)
  USER_PRIVATE: { read: (r) => r.nsOwner, write: (r) => r.nsOwner, delete: (r) => r.nsOwner || r.admin },
  // read: clients only if the object is public-read (checked per object) | write/delete: runtime, Admin
  SERVER_SCOPE: { read: () => true, write: (r) => r.admin, delete: (r) => r.admin },
  // the owning mod; other mods by grant — no client
  MOD_DATA: { read: () => false, write: () => false, delete: () => false },
};

/** Object flags for a client: read 2 public, 1 owner only, 0 nobody; system-owned objects need read 2. */
function flagsLetRead(object: ObjectMeta, me: string | null): boolean {
  if (object.read === 2) return true;
  return object.read === 1 && me !== null && object.owner === me;
}

const deniedRead = (a: Action) => a === 'read' || a === 'list';

function expectDoc(who: Who, scope: Scope, action: Action, object: ObjectMeta | null): Expected {
  if (who.kind === 'runtime') return { allowed: true, crossUser: false, hideExistence: false }; // authoritative
  if (who.kind === 'mod') {
    // Mods own MOD_DATA/<mod>; other mods' data only by grant; nothing else, and nothing is shared.
    if (scope !== 'MOD_DATA') return { allowed: false, crossUser: false, hideExistence: false };
    const allowed = action !== 'share' && (who.owns || who.grantAllows.has(action));
    return { allowed, crossUser: !who.owns, hideExistence: false };
  }
  const me = who.kind === 'user' ? who.id : null;
  const level = who.kind === 'user' ? who.level : Level.Guest;
  const userScope = scope === 'USER_PUBLIC' || scope === 'USER_PRIVATE';
  const role: Role = {
    me,
    nsOwner: userScope && me === OWNER,
    staff: level >= Level.Moderator,
    admin: level >= Level.Admin,
  };
  // Audit: touching another user's USER_* namespace, or staff acting on anyone else's data —
  // except reads of the public system namespaces, which are nobody's private data.
  const publicSystemRead = (scope === 'PUBLIC_READ' || scope === 'PUBLIC_RW') && deniedRead(action);
  const crossUser = userScope ? !role.nsOwner : role.staff && !publicSystemRead;
  const answer = (allowed: boolean, hideExistence = false): Expected => ({
    allowed,
    crossUser,
    hideExistence: !allowed && hideExistence,
  });

  if (action === 'share') return answer(false); // only blobs have shares
  const column: Column = action === 'list' ? 'read' : action;
  // Refused by the scope itself: the same 403 whether or not the object exists — except a
  // private namespace, which must look empty to everyone but its owner.
  if (!SCOPE_TABLE[scope][column](role)) return answer(false, column === 'read' && scope !== 'MOD_DATA');
  if (action === 'list') return answer(true); // listing filters per object, it never fails
  const canRead = object !== null && SCOPE_TABLE[scope].read(role) && flagsLetRead(object, me);
  if (object === null) return action === 'write' ? answer(true) : answer(false, true); // create / 404
  switch (action) {
    case 'read':
      return answer(canRead, true);
    case 'write':
      return answer(object.write === 1); // write 0: no client writes it
    case 'delete':
      return answer(object.write === 1, !canRead); // an unreadable object stays invisible
  }
}

function expectBlob(
  who: Who,
  action: Action,
  blob: { owner: string; share: ShareLevel | null } | null,
): Expected {
  if (who.kind === 'runtime') return { allowed: true, crossUser: false, hideExistence: false };
  // Only the owner and sharees see a blob: users own and receive blobs, guests and mods never.
  // A guest poking at a user's blob touches another user's data; mods are audited as mods
  // (MOD_DATA grants), and their refusal here is audited as a denial.
  if (who.kind === 'mod') return { allowed: false, crossUser: false, hideExistence: true };
  if (who.kind === 'guest') {
    return { allowed: false, crossUser: blob !== null && blob.owner !== SYSTEM_OWNER, hideExistence: true };
  }
  if (blob === null) {
    const allowed = action === 'write'; // creating a blob makes the caller its owner
    return { allowed, crossUser: false, hideExistence: !allowed };
  }
  const owns = blob.owner === who.id;
  const staff = who.level >= Level.Moderator;
  // Another user's blob (sharees included) is cross-user; staff acting on the system's too.
  const crossUser = !owns && (blob.owner !== SYSTEM_OWNER || staff);
  let allowed: boolean;
  if (owns) allowed = true;
  else if (action === 'read' || action === 'list') allowed = blob.share !== null;
  else if (action === 'write') allowed = blob.share === 'read_write';
  else if (action === 'delete')
    allowed = who.level >= Level.Admin; // admins delete, never read
  else allowed = false; // only the owner manages shares
  return { allowed, crossUser, hideExistence: !allowed && !owns && blob.share === null };
}

function expectedTarget(address: Address, object: ObjectMeta | null): string {
  if (address.kind === 'blob') return object?.owner ?? SYSTEM_OWNER;
  if (address.scope === 'MOD_DATA') return `mod:${address.namespace}`;
  if (address.scope === 'USER_PUBLIC' || address.scope === 'USER_PRIVATE') return address.namespace;
  return SYSTEM_OWNER;
}

// ---------------------------------------------------------------------------------------------
// The table.

function namespaceOf(scope: Scope): string {
  if (scope === 'USER_PUBLIC' || scope === 'USER_PRIVATE') return OWNER;
  if (scope === 'MOD_DATA') return TARGET_MOD;
  return '_';
}

function docObjects(scope: Scope): (ObjectMeta | null)[] {
  // System scopes and MOD_DATA hold system-owned objects only; a user namespace holds the
  // user's objects and, written by the runtime, system-owned ones.
  const owners = scope === 'USER_PUBLIC' || scope === 'USER_PRIVATE' ? [OWNER, SYSTEM_OWNER] : [SYSTEM_OWNER];
  const out: (ObjectMeta | null)[] = [null];
  for (const owner of owners) {
    for (const read of [0, 1, 2] as ReadFlag[]) {
      for (const write of [0, 1] as WriteFlag[]) out.push({ owner, read, write });
    }
  }
  return out;
}

function describeObject(object: ObjectMeta | null): string {
  if (!object) return 'absent';
  const owner = object.owner === SYSTEM_OWNER ? 'system' : object.owner === OWNER ? 'owner' : object.owner;
  const shares = object.shares ? ` shares ${[...object.shares].map(([u, l]) => `${u}:${l}`).join(',')}` : '';
  return `${owner}-owned read ${object.read} write ${object.write}${shares}`;
}

let combinations = 0;

function check(
  mismatches: string[],
  callerCase: CallerCase,
  address: Address,
  action: Action,
  object: ObjectMeta | null,
  expected: Expected,
): void {
  combinations++;
  const decision = decide({ caller: callerCase.caller, action, address, object, now: NOW });
  const want = {
    ...expected,
    audit: expected.crossUser || !expected.allowed,
    target: expectedTarget(address, object),
  };
  const got = {
    allowed: decision.allowed,
    crossUser: decision.crossUser,
    hideExistence: decision.hideExistence,
    audit: decision.audit,
    target: decision.target,
  };
  const label = `${callerCase.name} ${action} ${address.name} (${describeObject(object)})`;
  for (const field of Object.keys(want) as (keyof typeof want)[]) {
    if (got[field] !== want[field])
      mismatches.push(`${label}: ${field} is ${got[field]}, expected ${want[field]}`);
  }
  if (typeof decision.reason !== 'string' || decision.reason.length === 0)
    mismatches.push(`${label}: no reason`);
}

describe('decide() over every caller × scope × action × object', () => {
  afterAll(() => {
    // core compiles without DOM or Node types, so reach the console through globalThis.
    (globalThis as unknown as { console: { log(message: string): void } }).console.log(
      `rules.test.ts: ${combinations} decide() combinations checked against the spec`,
    );
  });

  it('covers exactly the scopes and actions the engine knows', () => {
    expect([...SCOPES].sort()).toEqual([...ALL_SCOPES].sort());
    expect([...ACTIONS].sort()).toEqual([...ALL_ACTIONS].sort());
  });

  for (const scope of ALL_SCOPES) {
    it(`${scope}: matches the scope table and the object flags`, () => {
      const address = docAddress(scope, namespaceOf(scope), KEY);
      const mismatches: string[] = [];
      for (const callerCase of CALLERS) {
        for (const object of docObjects(scope)) {
          for (const action of ALL_ACTIONS) {
            check(
              mismatches,
              callerCase,
              address,
              action,
              object,
              expectDoc(callerCase.who, scope, action, object),
            );
          }
        }
      }
      expect(mismatches).toEqual([]);
    });
  }

  it('blobs: only the owner and sharees see a blob, and only the owner shares it', () => {
    const address = blobAddress('shared/report.pdf');
    const mismatches: string[] = [];
    for (const callerCase of CALLERS) {
      const me = callerCase.who.kind === 'user' ? callerCase.who.id : null;
      for (const action of ALL_ACTIONS) {
        check(mismatches, callerCase, address, action, null, expectBlob(callerCase.who, action, null));
      }
      for (const owner of [OWNER, SYSTEM_OWNER]) {
        // Only a user other than the owner can hold a share (sharing with yourself is a 400).
        const levels: (ShareLevel | null)[] =
          me !== null && me !== owner ? [null, 'read_only', 'read_write'] : [null];
        for (const share of levels) {
          const shares = new Map<string, ShareLevel>([[DECOY, 'read_write']]);
          if (share && me) shares.set(me, share);
          const object: ObjectMeta = { owner, read: 1, write: 1, shares };
          for (const action of ALL_ACTIONS) {
            check(
              mismatches,
              callerCase,
              address,
              action,
              object,
              expectBlob(callerCase.who, action, { owner, share }),
            );
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('a denied read, list or delete of an object the caller cannot read answers exactly like absence', () => {
    // Metamorphic: whatever the table says, a refusal must not tell "exists but hidden" from
    // "does not exist" (same allowed, same 404-vs-403), so nothing leaks about private objects.
    const leaks: string[] = [];
    const cases: { address: Address; objects: ObjectMeta[] }[] = ALL_SCOPES.map((scope) => ({
      address: docAddress(scope, namespaceOf(scope), KEY),
      objects: docObjects(scope).filter((o): o is ObjectMeta => o !== null),
    }));
    cases.push({
      address: blobAddress('shared/report.pdf'),
      objects: [OWNER, SYSTEM_OWNER].map((owner) => ({
        owner,
        read: 1,
        write: 1,
        shares: new Map([[DECOY, 'read_write']]),
      })),
    });
    let compared = 0;
    for (const { caller, name } of CALLERS) {
      for (const { address, objects } of cases) {
        for (const object of objects) {
          if (decide({ caller, action: 'read', address, object, now: NOW }).allowed) continue;
          for (const action of ['read', 'list', 'delete'] as const) {
            const present = decide({ caller, action, address, object, now: NOW });
            if (present.allowed) continue; // e.g. an admin deleting USER_PRIVATE it cannot read
            const absent = decide({ caller, action, address, object: null, now: NOW });
            compared++;
            // The reason is sent to the caller too: it must not tell "hidden" from "absent".
            const sameWords = !present.hideExistence || absent.reason === present.reason;
            if (absent.allowed || absent.hideExistence !== present.hideExistence || !sameWords) {
              leaks.push(`${name} ${action} ${address.name} (${describeObject(object)})`);
            }
          }
        }
      }
    }
    expect(leaks).toEqual([]);
    expect(compared).toBeGreaterThan(500); // the property was exercised, not vacuously true
  });

  it('treats a missing object (undefined) like an absent one (null)', () => {
    for (const { caller } of CALLERS) {
      for (const address of [docAddress('USER_PUBLIC', OWNER, KEY), blobAddress('b')]) {
        for (const action of ALL_ACTIONS) {
          expect(decide({ caller, action, address, now: NOW })).toEqual(
            decide({ caller, action, address, object: null, now: NOW }),
          );
        }
      }
    }
  });

  it('judges grant expiry against the clock when no time is given', () => {
    const address = docAddress('MOD_DATA', TARGET_MOD, KEY);
    const mod = (expiresAt: number): Caller => ({
      kind: 'mod',
      mod: parseModName(CALLER_MOD),
      grants: [grant('read', { expiresAt })],
    });
    expect(decide({ caller: mod(1), action: 'read', address }).allowed).toBe(false);
    expect(decide({ caller: mod(Number.MAX_SAFE_INTEGER), action: 'read', address }).allowed).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// flagsForWrite and ownerForCreate.

const asUser = (id: string, level: Level): Caller => ({ kind: 'user', userId: parseUserId(id), level });
const owner = asUser(OWNER, Level.User);
const other = asUser(OTHER, Level.User);
const moderator = asUser(MODERATOR, Level.Moderator);
const admin = asUser(ADMIN, Level.Admin);
const guest: Caller = { kind: 'guest' };
const runtime: Caller = { kind: 'runtime' };
const mod: Caller = { kind: 'mod', mod: parseModName(TARGET_MOD), grants: [] };
const at = (scope: Scope, key = KEY) => docAddress(scope, namespaceOf(scope), key);

function failsWith(kind: SyncError['kind'], fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(SyncError);
  expect((thrown as SyncError).kind).toBe(kind);
}

describe('flagsForWrite', () => {
  it('gives a client write the scope’s widest flags by default', () => {
    expect(flagsForWrite(owner, at('USER_PUBLIC'), null, {})).toEqual({ read: 2, write: 1 });
    expect(flagsForWrite(owner, at('USER_PRIVATE'), null, {})).toEqual({ read: 1, write: 1 });
    expect(flagsForWrite(guest, at('PUBLIC_RW'), null, {})).toEqual({ read: 2, write: 1 });
    expect(flagsForWrite(admin, at('PUBLIC_READ'), undefined, {})).toEqual({ read: 2, write: 1 });
    // SERVER_SCOPE is the exception: server state stays hidden until opened with read 2.
    expect(flagsForWrite(admin, at('SERVER_SCOPE'), null, {})).toEqual({ read: 1, write: 1 });
    expect(flagsForWrite(owner, blobAddress('b'), null, {})).toEqual({ read: 1, write: 1 });
  });

  it('gives runtime and mod writes read 0 / write 0 by default, in every scope', () => {
    for (const scope of ALL_SCOPES) {
      expect(flagsForWrite(runtime, at(scope), null, {})).toEqual({ read: 0, write: 0 });
    }
    expect(flagsForWrite(mod, at('MOD_DATA'), null, {})).toEqual({ read: 0, write: 0 });
    expect(flagsForWrite(runtime, blobAddress('b'), null, {})).toEqual({ read: 0, write: 0 });
  });

  it('lets the runtime store custom flags up to the scope ceiling', () => {
    expect(flagsForWrite(runtime, at('SERVER_SCOPE'), null, { read: 2 })).toEqual({ read: 2, write: 0 });
    expect(
      flagsForWrite(
        runtime,
        at('PUBLIC_READ'),
        { owner: SYSTEM_OWNER, read: 0, write: 0 },
        { read: 2, write: 1 },
      ),
    ).toEqual({
      read: 2,
      write: 1,
    });
  });

  it('lets the owner narrow its own object, on create and later, and widen it back within the scope', () => {
    expect(flagsForWrite(owner, at('USER_PUBLIC'), null, { read: 1 })).toEqual({ read: 1, write: 1 });
    expect(flagsForWrite(owner, at('USER_PUBLIC'), null, { read: 0, write: 0 })).toEqual({
      read: 0,
      write: 0,
    });
    expect(flagsForWrite(owner, at('USER_PRIVATE'), null, { read: 0 })).toEqual({ read: 0, write: 1 });
    const draft: ObjectMeta = { owner: OWNER, read: 1, write: 1 };
    expect(flagsForWrite(owner, at('USER_PUBLIC'), draft, {})).toEqual({ read: 1, write: 1 }); // kept
    expect(flagsForWrite(owner, at('USER_PUBLIC'), draft, { read: 2 })).toEqual({ read: 2, write: 1 });
    expect(flagsForWrite(owner, blobAddress('b'), { owner: OWNER, read: 1, write: 1 }, { write: 0 })).toEqual(
      {
        read: 1,
        write: 0,
      },
    );
  });

  it('lets an admin change the flags of someone else’s object', () => {
    const theirs: ObjectMeta = { owner: OWNER, read: 2, write: 1 };
    expect(flagsForWrite(admin, at('USER_PUBLIC'), theirs, { read: 1 })).toEqual({ read: 1, write: 1 });
    expect(flagsForWrite(admin, at('PUBLIC_RW'), null, { write: 0 })).toEqual({ read: 2, write: 0 });
  });

  it('rejects flags past the scope ceiling or outside 0/1/2 with BadRequest', () => {
    failsWith('BadRequest', () => flagsForWrite(owner, at('USER_PRIVATE'), null, { read: 2 }));
    failsWith('BadRequest', () =>
      flagsForWrite(owner, at('USER_PRIVATE'), { owner: OWNER, read: 1, write: 1 }, { read: 2 }),
    );
    failsWith('BadRequest', () => flagsForWrite(owner, blobAddress('b'), null, { read: 2 }));
    failsWith('BadRequest', () => flagsForWrite(runtime, at('USER_PRIVATE'), null, { read: 2 }));
    for (const bad of [3, -1, 1.5, Number.NaN]) {
      failsWith('BadRequest', () => flagsForWrite(owner, at('USER_PUBLIC'), null, { read: bad }));
    }
    for (const bad of [2, -1, 0.5]) {
      failsWith('BadRequest', () => flagsForWrite(owner, at('USER_PUBLIC'), null, { write: bad }));
    }
  });

  it('forbids anyone but the owner or an admin to choose flags', () => {
    const theirs: ObjectMeta = { owner: OWNER, read: 2, write: 1 };
    failsWith('Forbidden', () => flagsForWrite(moderator, at('USER_PUBLIC'), theirs, { read: 1 }));
    failsWith('Forbidden', () =>
      flagsForWrite(other, blobAddress('b'), { owner: OWNER, read: 1, write: 1 }, { write: 0 }),
    );
    const system: ObjectMeta = { owner: SYSTEM_OWNER, read: 2, write: 1 };
    failsWith('Forbidden', () => flagsForWrite(guest, at('PUBLIC_RW'), system, { write: 0 }));
    failsWith('Forbidden', () => flagsForWrite(owner, at('USER_PUBLIC'), { ...system }, { read: 1 }));
    // On create too: a guest must not create a PUBLIC_RW object nobody else can edit or see.
    failsWith('Forbidden', () => flagsForWrite(guest, at('PUBLIC_RW'), null, { write: 0 }));
    failsWith('Forbidden', () => flagsForWrite(other, at('PUBLIC_RW'), null, { read: 0 }));
    failsWith('Forbidden', () => flagsForWrite(moderator, at('USER_PUBLIC'), null, { read: 1 }));
    // Repeating the flags that are already there is not a change.
    expect(flagsForWrite(moderator, at('USER_PUBLIC'), theirs, { read: 2, write: 1 })).toEqual({
      read: 2,
      write: 1,
    });
    expect(flagsForWrite(guest, at('PUBLIC_RW'), null, { read: 2, write: 1 })).toEqual({ read: 2, write: 1 });
    expect(flagsForWrite(moderator, at('USER_PUBLIC'), theirs, {})).toEqual({ read: 2, write: 1 });
  });
});

describe('ownerForCreate', () => {
  it('gives user-namespace objects to the namespace’s user, whoever writes them', () => {
    expect(ownerForCreate(owner, at('USER_PUBLIC'))).toBe(OWNER);
    expect(ownerForCreate(owner, at('USER_PRIVATE'))).toBe(OWNER);
    expect(ownerForCreate(moderator, at('USER_PUBLIC'))).toBe(OWNER);
  });

  it('gives system-namespace and MOD_DATA objects to the nil UUID', () => {
    expect(SYSTEM_OWNER).toBe('00000000-0000-0000-0000-000000000000');
    expect(ownerForCreate(guest, at('PUBLIC_RW'))).toBe(SYSTEM_OWNER);
    expect(ownerForCreate(admin, at('PUBLIC_READ'))).toBe(SYSTEM_OWNER);
    expect(ownerForCreate(admin, at('SERVER_SCOPE'))).toBe(SYSTEM_OWNER);
    expect(ownerForCreate(mod, at('MOD_DATA'))).toBe(SYSTEM_OWNER);
  });

  it('makes every runtime write system-owned', () => {
    for (const scope of ALL_SCOPES) expect(ownerForCreate(runtime, at(scope))).toBe(SYSTEM_OWNER);
    expect(ownerForCreate(runtime, blobAddress('b'))).toBe(SYSTEM_OWNER);
  });

  it('gives a blob to the user who creates it', () => {
    expect(ownerForCreate(other, blobAddress('b'))).toBe(OTHER);
    expect(ownerForCreate(admin, blobAddress('b'))).toBe(ADMIN);
  });
});
