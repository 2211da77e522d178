import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeMuxFrame, encodeMuxFrame, type Message } from '@scopesync/core';
// The relay's own reading of a request's credential (header, subprotocol or query).
import { apiKeyOf } from '@scopesync/relay';
import WebSocket, { WebSocketServer } from 'ws';

/*
 * A hostile relay for tests: a proxy between real clients and a real relay that rewrites what
 * the relay answers. Everything honest goes through unchanged; hooks play the attacker —
 * substituting public keys, planting grants, forging member lists and writers, dropping,
 * reordering or replaying envelopes. Real relay, real client, real libsodium: only the wire is
 * in the attacker's hands, as it would be for a compromised relay operator.
 */

/** An HTTP answer as the proxy saw it from the relay; a hook may change it. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The attacker's hooks; each may pass its input through unchanged by returning it. */
export interface HostileHooks {
  /** Rewrites the relay's answer to an HTTP request (`path` includes the query). */
  http?:
    | ((
        request: { method: string; path: string; apiKey: string | undefined },
        answer: HttpAnswer,
      ) => HttpAnswer)
    | undefined;
  /** Rewrites one message the relay sends on the multiplexed socket: none, one, or several. */
  frame?: ((docName: string, message: Message, apiKey: string | undefined) => Message[]) | undefined;
}

/** A running hostile proxy: point clients at `url`. */
export interface HostileRelay {
  readonly url: string;
  /** The hooks in force; replace fields at any time. */
  readonly hooks: HostileHooks;
  close(): Promise<void>;
}

/** JSON of an answer's body. */
export function jsonOf(answer: HttpAnswer): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(answer.body)) as Record<string, unknown>;
}

/** The answer with `value` as its JSON body. */
export function withJson(answer: HttpAnswer, value: unknown): HttpAnswer {
  const body = new TextEncoder().encode(JSON.stringify(value));
  return { ...answer, body, headers: { ...answer.headers, 'content-length': String(body.length) } };
}

/** The subprotocols a client asked for (`scopesync, bearer.<credential>`), as sent. */
function protocolsOf(req: IncomingMessage): string[] {
  const header = req.headers['sec-websocket-protocol'];
  return typeof header === 'string' ? header.split(',').map((p) => p.trim()) : [];
}

/** Starts a hostile proxy in front of the relay at `target` (an http:// URL). */
export async function startHostileRelay(target: string): Promise<HostileRelay> {
  const hooks: HostileHooks = {};
  const targetWs = target.replace(/^http/, 'ws');
  const sockets = new Set<WebSocket>();

  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name))
        headers[name] = value;
    }
    const method = req.method ?? 'GET';
    const upstream = await fetch(`${target}${req.url ?? '/'}`, {
      method,
      headers,
      ...(chunks.length > 0 && method !== 'GET' && method !== 'HEAD' ? { body: Buffer.concat(chunks) } : {}),
    });
    let answer: HttpAnswer = {
      status: upstream.status,
      headers: Object.fromEntries(
        [...(upstream.headers as unknown as Iterable<[string, string]>)].filter(
          ([name]) => !['content-encoding', 'transfer-encoding', 'connection'].includes(name),
        ),
      ),
      body: new Uint8Array(await upstream.arrayBuffer()),
    };
    if (hooks.http)
      answer = hooks.http({ method, path: req.url ?? '/', apiKey: apiKeyOf(req) ?? undefined }, answer);
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
    res.end(answer.body);
  };

  const server: Server = createServer((req, res) => {
    onRequest(req, res).catch((error) => {
      res.writeHead(502).end(String(error));
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    // The credential rides in the subprotocol: pass it on as the client sent it.
    const protocols = protocolsOf(req);
    const upstream = new WebSocket(`${targetWs}${req.url ?? '/'}`, protocols);
    const apiKey = apiKeyOf(req) ?? undefined;
    upstream.once('error', () => socket.destroy());
    upstream.once('open', () => {
      wss.handleUpgrade(req, socket, head, (client) => {
        sockets.add(client);
        sockets.add(upstream);
        const multiplexed = (req.url ?? '').split('?')[0] === '/sync';
        client.on('message', (data: Buffer) => {
          if (upstream.readyState === WebSocket.OPEN) upstream.send(data);
        });
        upstream.on('message', (data: Buffer) => {
          if (client.readyState !== WebSocket.OPEN) return;
          if (!multiplexed || !hooks.frame) {
            client.send(data);
            return;
          }
          const { docName, message } = decodeMuxFrame(new Uint8Array(data));
          for (const out of hooks.frame(docName, message, apiKey)) client.send(encodeMuxFrame(docName, out));
        });
        const end = (): void => {
          client.close();
          upstream.close();
        };
        client.on('close', end);
        upstream.on('close', end);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hooks,
    async close() {
      for (const socket of sockets) socket.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
