import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { useTestRelay } from './support/start-test-relay.ts';

/*
 * A refused sync connection must not tell a hidden object from an absent one: the upgrade
 * answer for another user's owner-read draft is byte-for-byte the answer for a doc that
 * was never written.
 */

const t = useTestRelay();

/** The raw HTTP answer to a WebSocket upgrade: status line and body, nothing else varies. */
function upgradeAnswer(url: string, path: string, key: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'x-api-key': key,
      },
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error(`upgrade to ${path} was accepted`));
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('refused sync connections do not leak existence', () => {
  it('answers an owner-read draft exactly like a document that does not exist', async () => {
    const alice = await t.user('alice');
    const bob = await t.user('bob');
    const draft = `/userdata/${alice.userId}/USER_PUBLIC/draft`;
    const written = await t.api('POST', draft, { key: alice.key, body: { value: { text: 'wip' }, read: 1 } });
    expect(written.status).toBe(200);

    const hidden = await upgradeAnswer(
      t.url,
      `/sync/${encodeURIComponent(`USER_PUBLIC/${alice.userId}/draft`)}`,
      bob.key,
    );
    const absent = await upgradeAnswer(
      t.url,
      `/sync/${encodeURIComponent(`USER_PUBLIC/${alice.userId}/never-written`)}`,
      bob.key,
    );
    expect(hidden.status).toBeGreaterThanOrEqual(400);
    expect(hidden).toEqual(absent);
  });
});
