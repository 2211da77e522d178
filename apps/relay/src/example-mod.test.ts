import { createRelay, type Relay } from '@scopesync/relay';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GUESTBOOK_DOC, GuestbookMod } from './example-mod.ts';

describe('GuestbookMod', () => {
  let relay: Relay;
  let guestbook: GuestbookMod;
  let url: string;

  beforeEach(async () => {
    guestbook = new GuestbookMod();
    relay = createRelay({ port: 0, mods: [guestbook], log: () => undefined });
    url = (await relay.listen()).url;
  });
  afterEach(() => relay.close());

  it('keeps entries in its MOD_DATA and publishes a read-only summary everyone reads', async () => {
    const ada = await relay.runtime.createUser({ deviceName: 'ada' });
    await relay.runtime.setUserData({
      requestingUserId: ada.userId,
      requestingUserLevel: 1,
      targetUserId: ada.userId,
      scope: 'USER_PUBLIC',
      key: 'profile',
      value: { name: 'Ada' },
    });
    expect(await guestbook.sign(ada.userId, '  hello relay  ')).toBe(1);
    const summary = await (await fetch(`${url}/userdata/_/PUBLIC_READ/guestbook`)).json();
    expect(summary).toMatchObject({
      value: { count: 1, entries: [{ author: 'Ada', message: 'hello relay' }] },
      read: 2,
      write: 0,
    });
    // Clients cannot edit the summary, nor see the raw entries.
    const edit = await fetch(`${url}/userdata/_/PUBLIC_READ/guestbook`, {
      method: 'POST',
      headers: { 'x-api-key': ada.key },
      body: JSON.stringify({ value: {} }),
    });
    expect(edit.status).toBe(403);
    expect(
      (await fetch(`${url}/userdata/guestbook/MOD_DATA/entries`, { headers: { 'x-api-key': ada.key } }))
        .status,
    ).toBe(403);
    expect((await relay.runtime.get(GUESTBOOK_DOC))?.value.count).toBe(1);
  });
});
