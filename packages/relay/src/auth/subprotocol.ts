// Credentials in the WebSocket subprotocol: browsers cannot set headers on a WebSocket, and a
// query string ends up in proxy logs. A client offers `Sec-WebSocket-Protocol: scopesync,
// bearer.<key or token>`; the relay answers with `scopesync` only, never echoing the secret.

/** The subprotocol the relay selects when a client offers it. */
export const SYNC_SUBPROTOCOL = 'scopesync';
/** Prefix of the offered subprotocol that carries the credential. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** The credential a `Sec-WebSocket-Protocol` header carries (`bearer.<credential>`), or null. */
export function credentialOfProtocols(header: string | undefined): string | null {
  if (header === undefined) return null;
  for (const offered of header.split(',')) {
    const protocol = offered.trim();
    if (protocol.startsWith(BEARER_PROTOCOL_PREFIX) && protocol.length > BEARER_PROTOCOL_PREFIX.length)
      return protocol.slice(BEARER_PROTOCOL_PREFIX.length);
  }
  return null;
}

/**
 * The subprotocol to answer an upgrade with (the `ws` server's `handleProtocols`): `scopesync`
 * when offered, else none. The `bearer.…` entry is never selected, so it is never sent back.
 */
export function chooseSubprotocol(protocols: ReadonlySet<string>): string | false {
  return protocols.has(SYNC_SUBPROTOCOL) ? SYNC_SUBPROTOCOL : false;
}

/** The subprotocols a client offers to authenticate with `credential` (none for a guest). */
export function subprotocolsFor(credential: string | undefined): string[] {
  return credential === undefined ? [] : [SYNC_SUBPROTOCOL, `${BEARER_PROTOCOL_PREFIX}${credential}`];
}
