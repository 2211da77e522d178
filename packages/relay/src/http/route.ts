import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Caller, type Decision, type DocName, type RelayStore, SyncError } from '@scopesync/core';
import type { AccessControl, UserCaller } from '../access-control.ts';
import type { AuditLog } from '../audit-log.ts';
import type { DocHub } from '../documents/doc-hub.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { KeyChallenges } from '../key-proof.ts';
import type { KeyedMutex } from '../keyed-mutex.ts';

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

/** What the routes work with: the relay's stores, hub and access path. */
export interface RouteServices {
  readonly access: AccessControl;
  readonly store: RelayStore;
  readonly audit: AuditLog;
  readonly hub: DocHub;
  /** The relay's domain events, e.g. to announce a removed document. */
  readonly bus: EventBus;
  /** Serialises HTTP writes per object, so If-Match and create-if-absent are atomic among them. */
  readonly mutex: KeyedMutex;
  /**
   * Re-checks live subscriptions of a document (after a revoke, a flag change or a delete).
   * Resolves once every subscriber that lost access has been cut off; never rejects.
   */
  readonly refreshAccess: (name: DocName) => Promise<void>;
  /** Closes the live sockets that authenticated with the API key of this hash (it was just revoked). */
  readonly closeKeySockets: (keyHash: string) => void;
  /** Single-use challenges for proofs of a signing key (POST /keys/challenge). */
  readonly challenges: KeyChallenges;
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

/**
 * The error for a denied decision: 404 when the decision must hide whether the object
 * exists (with a message that does not say why), 401 for a guest (a key might help),
 * else 403 with the engine's reason.
 */
export function deniedError(decision: Decision, caller: Caller): SyncError {
  if (decision.hideExistence) return new SyncError('NotFound', 'not found');
  if (caller.kind === 'guest')
    return new SyncError('Unauthorized', `an API key is required: ${decision.reason}`);
  return new SyncError('Forbidden', decision.reason);
}
