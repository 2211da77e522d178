import { describe, expect, it } from 'vitest';
import { parseRequestUrl, queryParam, requestPath } from './request.ts';

describe('requestPath', () => {
  it('is the path of an origin-form target, as sent, without its query or fragment', () => {
    expect(requestPath('/sync/a%2Fb/c?key=k#f')).toBe('/sync/a%2Fb/c');
    expect(requestPath('/a#f?x')).toBe('/a');
    expect(requestPath('/a/../b')).toBe('/a/../b');
    expect(requestPath('/')).toBe('/');
    expect(requestPath('/?x')).toBe('/');
  });

  it('refuses any other form of target with BadRequest', () => {
    for (const bad of ['', '*', 'a/b', 'http://relay.example/sync', '?key=k', '#/sync']) {
      expect(() => requestPath(bad), bad).toThrow(expect.objectContaining({ kind: 'BadRequest' }));
    }
  });

  it('is the path parseRequestUrl splits', () => {
    expect(parseRequestUrl('/a/b%2Fc?x=1#y').segments).toEqual(['a', 'b/c']);
    expect(() => parseRequestUrl('a/b')).toThrow(expect.objectContaining({ kind: 'BadRequest' }));
  });
});

describe('queryParam', () => {
  /** What URLSearchParams reads: the reference the fast scan must agree with. */
  const reference = (target: string, name: string): string | null => {
    const q = target.indexOf('?');
    return q < 0 ? null : new URLSearchParams(target.slice(q + 1)).get(name);
  };

  it('reads the first value of a parameter as URLSearchParams does', () => {
    const cases = [
      '/sync/x?key=abc',
      '/sync/x?a=1&key=abc&key=def',
      '/sync/x?keys=1&akey=2&key=3',
      '/sync/x?keys=1',
      '/sync/x?key',
      '/sync/x?key=',
      '/sync/x?key=a=b',
      '/sync/x?&&key=a&',
      '/sync/x?',
      '/sync/x',
      '/sync/x?key=a#frag',
      '/sync/x?key=a%2Bb',
      '/sync/x?key=a+b',
      '/sync/x?k%65y=a',
      '/sync/x?key=%E0%A4%A',
      '/sync/x?key=%',
      '/sync/x?other=%&key=plain',
      '/sync?x=1?key=2',
    ];
    for (const target of cases) expect(queryParam(target, 'key'), target).toBe(reference(target, 'key'));
  });

  it('finds nothing outside the query', () => {
    expect(queryParam('/sync/key=a', 'key')).toBeNull();
    expect(queryParam('/sync/x?ke=a&y=key', 'key')).toBeNull();
  });
});
