import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller, Locks, RelayStore } from '@scopesync/core';
import type { AccessControl, UserCaller } from '../access-control.ts';
import type { AuditLog } from '../audit-log.ts';
import type { DocHub } from '../documents/doc-hub.ts';
import type { KeyChallenges } from '../key-proof.ts';
import type { AccountService } from '../services/account-service.ts';
import type { BlobService } from '../services/blob-service.ts';
import type { DeviceListService } from '../services/device-list-service.ts';
import type { ObjectService } from '../services/object-service.ts';
import type { ShareService } from '../services/share-service.ts';

/** The HTTP methods routes answer (HEAD is answered wherever GET is). */
export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One request as a route handler sees it. */
export interface RouteRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The `:name` segments of the route's pattern, decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The authenticated caller (Guest without a key); Unauthorized for an invalid key. Memoized. */
  caller(): Promise<Caller>;
  /** The caller, who must be a user: Unauthorized for a guest. */
  user(): Promise<UserCaller>;
}

/** Answers one request; throws a SyncError for a 4xx. */
export type RouteHandler = (request: RouteRequest) => Promise<void>;

/** A path pattern (literal segments and `:params`) and its handlers by method. */
export interface Route {
  readonly pattern: readonly string[];
  readonly methods: Partial<Record<RouteMethod, RouteHandler>>;
}

/** What the routes work with: the use-case services, and the stores and access path for the rest. */
export interface RouteServices {
  readonly access: AccessControl;
  readonly store: RelayStore;
  readonly audit: AuditLog;
  readonly hub: DocHub;
  /** Scoped documents: read, write, delete (check → If-Match → prepare → narrow → write → events). */
  readonly objects: ObjectService;
  /** Raw blob bytes. */
  readonly blobs: BlobService;
  /** Blob shares. */
  readonly shares: ShareService;
  /** Key revocation and levels. */
  readonly accounts: AccountService;
  /** Users' signed device lists, and the revocation of the keys of devices they drop. */
  readonly devices: DeviceListService;
  /** Serialises check-then-write sections per name (a signing key, a blob's grants). */
  readonly locks: Locks;
  /** Single-use challenges for proofs of a signing key (POST /keys/challenge). */
  readonly challenges: KeyChallenges;
  /** `closed`: POST /keys refuses new users (existing users' devices may still join them). */
  readonly registration?: 'open' | 'closed' | undefined;
  /** The largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

/** Matches decoded path segments against the routes; the first pattern that fits wins. */
export function matchRoute(
  routes: readonly Route[],
  segments: readonly string[],
): { route: Route; params: Record<string, string> } | null {
  for (const route of routes) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length; i++) {
      const part = route.pattern[i] as string;
      const segment = segments[i] as string;
      if (part.startsWith(':')) {
        if (segment === '') {
          ok = false;
          break;
        }
        params[part.slice(1)] = segment;
      } else if (part !== segment) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return null;
}
