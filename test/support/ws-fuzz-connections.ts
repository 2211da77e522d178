import { connect } from 'node:net';
import type { SeededRandom } from '@scopesync/testing';
import { expect } from 'vitest';
import { enc } from './http-client.ts';
import type { Fixture } from './ws-fuzz-fixture.ts';
import { brokenWsBytes, hex } from './ws-fuzz-frames.ts';
import { INVALID_NAMES } from './ws-fuzz-generators.ts';
import { ANSWER_TIMEOUT_MS, open } from './ws-fuzz-sockets.ts';
import { bump, type Stats } from './ws-fuzz-stats.ts';

// The WebSocket fuzzer's attacks on the connection itself rather than on its frames: upgrades
// that must be refused before a socket opens, and sockets broken at the WebSocket layer after
// a successful upgrade.

/** Upgrades that must be refused before the socket opens. */
export async function refusedUpgrades(r: SeededRandom, f: Fixture, stats: Stats): Promise<void> {
  const bob = f.bob.key as string;
  const cases: Array<[string, number]> = [
    [`/sync/${f.protectedDocs[0]}?key=${bob}`, 403],
    [`/sync/${enc(`USER_PUBLIC/${f.alice}/draft`)}?key=${bob}`, 403],
    [`/sync/USER_PRIVATE/${f.alice}/notes`, 403],
    ['/sync/blob/alice-plain', 403],
    [`/sync/blob/alice-enc?key=${bob}`, 400],
    [`/sync/PUBLIC_RW/_/board?key=${r.word(10, 40)}`, 401],
    [`/sync?key=${r.word(10, 40)}`, 401],
    [`/sync/${enc(r.pick(INVALID_NAMES.slice(1, 8)))}`, 400],
    ['/sync/blob%2F..', 400],
  ];
  const [path, status] = r.pick(cases);
  const answer = await open(`${f.relay.wsUrl}${path}`, false);
  if (typeof answer !== 'number') await answer.close();
  expect(answer, `upgrade ${path}`).toBe(status);
  stats.upgradesRefused += 1;
}

/**
 * Upgrades a raw TCP socket to a sync endpoint, then sends bytes broken at the WebSocket layer.
 * The relay (its ws server) must drop the socket; raw garbage may merely look like the start
 * of a long frame, so that one is given up after a moment.
 */
export async function brokenWebSocket(r: SeededRandom, f: Fixture, stats: Stats): Promise<void> {
  const { bytes, kind } = brokenWsBytes(r);
  const actor = r.pick(f.actors);
  const path = `${r.bool() ? '/sync' : '/sync/PUBLIC_RW/_/board'}${actor.key === undefined ? '' : `?key=${actor.key}`}`;
  const port = Number(new URL(f.relay.url).port);
  const closedByRelay = await new Promise<boolean>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    let upgraded = false;
    const timer = setTimeout(
      () => {
        socket.destroy();
        resolve(false);
      },
      kind === 'garbage' ? 100 : ANSWER_TIMEOUT_MS,
    );
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${Buffer.from(r.bytes(16)).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (!head.startsWith('HTTP/1.1 101'))
        reject(new Error(`upgrade of ${path} refused: ${head.split('\r\n')[0]}`));
      upgraded = true;
      socket.write(bytes);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(upgraded);
    });
    socket.on('error', () => undefined);
  });
  if (kind !== 'garbage')
    expect(closedByRelay, `the relay kept a socket open after ${kind}: ${hex(bytes)}`).toBe(true);
  bump(stats.broken, kind);
}
