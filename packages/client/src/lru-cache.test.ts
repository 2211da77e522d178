import { describe, expect, it } from 'vitest';
import { LruCache } from './lru-cache.ts';

describe('LruCache', () => {
  it('evicts the least recently used entry past capacity and reports it', () => {
    const evicted: string[] = [];
    const cache = new LruCache<string, number>(2, (key) => evicted.push(key));
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1); // a is now the most recent
    cache.set('c', 3);
    expect(evicted).toEqual(['b']);
    expect(cache.has('b')).toBe(false);
    expect(cache.size).toBe(2);
  });

  it('reports deleted, replaced and cleared entries', () => {
    const evicted: string[] = [];
    const cache = new LruCache<string, number>(5, (key, value) => evicted.push(`${key}=${value}`));
    cache.set('a', 1);
    cache.set('a', 2);
    cache.set('b', 3);
    cache.delete('b');
    cache.clear();
    expect(evicted).toEqual(['a=1', 'b=3', 'a=2']);
    expect(cache.size).toBe(0);
  });
});
