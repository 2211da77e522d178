import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ClientAddress, trustedProxyProblem } from './client-address.ts';

const request = (peer: string, headers: Record<string, string> = {}): IncomingMessage =>
  ({ socket: { remoteAddress: peer }, headers }) as unknown as IncomingMessage;

describe('ClientAddress', () => {
  it('uses the TCP peer and ignores forwarding headers when no proxy is trusted', () => {
    const none = new ClientAddress();
    expect(none.of(request('203.0.113.9', { 'x-forwarded-for': '1.1.1.1' }))).toBe('203.0.113.9');
    expect(none.of(request('::ffff:203.0.113.9'))).toBe('203.0.113.9');
  });

  it('reads the forwarded client only from a trusted peer, rightmost untrusted hop first', () => {
    const proxies = new ClientAddress(['10.0.0.0/8', '::1']);
    expect(proxies.of(request('10.1.2.3', { 'x-forwarded-for': '198.51.100.7' }))).toBe('198.51.100.7');
    // A client's own X-Forwarded-For entries are to the left of what the proxy appended.
    expect(proxies.of(request('10.1.2.3', { 'x-forwarded-for': '1.1.1.1, 198.51.100.7, 10.0.0.5' }))).toBe(
      '198.51.100.7',
    );
    expect(proxies.of(request('::1', { forwarded: 'for="[2001:db8::1]:4711";proto=https' }))).toBe(
      '2001:db8::1',
    );
    expect(proxies.of(request('10.1.2.3', { forwarded: 'for=192.0.2.60, for=10.0.0.2' }))).toBe('192.0.2.60');
    // An untrusted peer's headers are the client's word: ignored.
    expect(proxies.of(request('203.0.113.9', { 'x-forwarded-for': '198.51.100.7' }))).toBe('203.0.113.9');
    // A trusted peer without a usable header is the client.
    expect(proxies.of(request('10.1.2.3', { 'x-forwarded-for': 'garbage' }))).toBe('10.1.2.3');
  });

  it('accepts addresses and CIDR ranges only', () => {
    expect(trustedProxyProblem('10.0.0.0/8')).toBeNull();
    expect(trustedProxyProblem('fd00::/8')).toBeNull();
    expect(trustedProxyProblem('10.0.0.0/33')).toMatch(/prefix/);
    expect(trustedProxyProblem('proxy.local')).toMatch(/not an IP/);
    expect(() => new ClientAddress(['nope'])).toThrow(RangeError);
  });
});
