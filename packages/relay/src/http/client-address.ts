import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * The address a request comes from, for rate limits and per-address caps: the TCP peer, or —
 * only when the peer is one of the trusted proxies — the client it forwarded for, read from
 * `Forwarded` (RFC 7239) or `X-Forwarded-For`. The rightmost address that is not itself a
 * trusted proxy is taken, so a client cannot pick its own address by sending the header: the
 * entries to its left are whatever the client wrote.
 */
export class ClientAddress {
  readonly #trusted = new BlockList();
  readonly #any: boolean;

  /** `trustedProxies`: addresses (`10.0.0.1`, `::1`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`). Throws RangeError on anything else. */
  constructor(trustedProxies: readonly string[] = []) {
    for (const entry of trustedProxies) {
      const problem = trustedProxyProblem(entry);
      if (problem !== null) throw new RangeError(problem);
      const [address = '', prefix] = entry.split('/');
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#trusted.addAddress(address, type);
      else this.#trusted.addSubnet(address, Number(prefix), type);
    }
    this.#any = trustedProxies.length > 0;
  }

  /** The client's address for `request` (see the class). */
  of(request: IncomingMessage): string {
    const peer = normalize(request.socket.remoteAddress ?? 'unknown');
    if (!this.#any || !this.#isTrusted(peer)) return peer;
    const chain = forwardedChain(request);
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = chain[i] as string;
      if (!this.#isTrusted(hop)) return hop;
    }
    return chain[0] ?? peer;
  }

  #isTrusted(address: string): boolean {
    const version = isIP(address);
    if (version === 0) return false;
    return this.#trusted.check(address, version === 6 ? 'ipv6' : 'ipv4');
  }
}

/** Why `entry` is not an address or a CIDR range, or null when it is one. */
export function trustedProxyProblem(entry: string): string | null {
  const [address = '', prefix, extra] = entry.split('/');
  const version = isIP(address);
  const max = version === 6 ? 128 : 32;
  if (version === 0 || extra !== undefined)
    return `${JSON.stringify(entry)} is not an IP address or CIDR range`;
  if (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= max)) {
    return `${JSON.stringify(entry)} has a prefix length outside 0–${max}`;
  }
  return null;
}

/** The forwarded-for addresses, leftmost (the original client, as claimed) first; invalid ones dropped. */
function forwardedChain(request: IncomingMessage): string[] {
  const forwarded = request.headers.forwarded;
  if (forwarded !== undefined) {
    const hops: string[] = [];
    for (const element of forwarded.split(',')) {
      for (const pair of element.split(';')) {
        const match = /^\s*for\s*=\s*"?([^";]*)"?\s*$/i.exec(pair);
        if (match?.[1] !== undefined) hops.push(stripPort(match[1]));
      }
    }
    return hops.map(normalize).filter((hop) => isIP(hop) !== 0);
  }
  const header = request.headers['x-forwarded-for'];
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  return raw
    .split(',')
    .map((hop) => normalize(stripPort(hop.trim())))
    .filter((hop) => isIP(hop) !== 0);
}

/** `[::1]:443` → `::1`, `1.2.3.4:80` → `1.2.3.4`. */
function stripPort(value: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(value);
  return v4?.[1] ?? value;
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4, so one client has one address. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
}
