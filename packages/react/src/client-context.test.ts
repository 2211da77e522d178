import { createClient, memoryClientStore, type SyncClient } from '@scopesync/client';
import { createElement as h } from 'react';
import { renderToString } from 'react-dom/server';
import { afterEach, describe, expect, it } from 'vitest';
import { ScopeSyncProvider } from './client-context.ts';
import { useDoc } from './use-doc.ts';
import { useSyncStatus } from './use-sync-status.ts';

const clients: SyncClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
});

/** A guest client that never connects (no relay needed to render). */
async function offlineClient(): Promise<SyncClient> {
  const client = await createClient({
    url: 'http://127.0.0.1:9',
    store: memoryClientStore(),
    connect: false,
    WebSocket: class {},
  });
  clients.push(client);
  return client;
}

function Status() {
  const { status, online } = useSyncStatus();
  return h('p', null, `${status} ${online}`);
}

function Doc() {
  const { provider, synced, readOnly } = useDoc('PUBLIC_RW/_/pad');
  return h('p', null, `${provider === undefined} ${synced} ${readOnly}`);
}

describe('ScopeSyncProvider', () => {
  it('gives the hooks its client', async () => {
    const client = await offlineClient();
    expect(renderToString(h(ScopeSyncProvider, { client }, h(Status)))).toBe('<p>offline false</p>');
  });

  it('says where to put it when a hook is used outside one', () => {
    expect(() => renderToString(h(Status))).toThrow(/<ScopeSyncProvider client=/);
  });

  it('opens no document while rendering: useDoc opens it in an effect', async () => {
    const client = await offlineClient();
    expect(renderToString(h(ScopeSyncProvider, { client }, h(Doc)))).toBe('<p>true false true</p>');
  });
});
