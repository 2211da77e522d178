// The README's 30-second tour, line for line, as a Node app. Two differences, both because this
// runs in Node 20 rather than a browser: `WebSocket` comes from `ws`, and the client keeps its
// data in memory (IndexedDB in a browser). The friend whose id the README leaves as a
// placeholder is a second client here, so the share and the permissions can be seen from the
// other side. Run it against a relay: `npm run relay`, then `npm run build && npm run tour`.
import { createClient, SyncError } from '@scopesync/client';
import WebSocket from 'ws';

const url = process.env.SCOPESYNC_URL ?? 'http://localhost:8787';

const client = await createClient({ url, deviceName: 'my-laptop', WebSocket });
const me = client.userId; // your user id: others find you and share with you by it
if (me === undefined) throw new Error('no user id: the first start registers this device with the relay');
const friend = await createClient({ url, deviceName: 'friends-phone', WebSocket });
const friendId = friend.userId;
if (friendId === undefined) throw new Error('no user id for the friend');

// Local first: resolves once durable in IndexedDB, syncs whenever the relay is reachable.
await client.userData.set('USER_PUBLIC', me, 'profile', { name: 'Ada', bio: 'hi' });
await client.userData.update('USER_PUBLIC', me, 'profile', { bio: 'hello' });

// USER_PRIVATE is end-to-end encrypted: the relay stores only signed ciphertext.
await client.userData.set('USER_PRIVATE', me, 'diary', { today: 'wrote a README' });
const phrase = await client.encryption.exportRecoveryPhrase(); // 24 words: a second device's way in

// Any document is a Yjs doc: collaborative, offline, merged without conflicts.
const todo = client.doc(`USER_PUBLIC/${me}/todo`);
await todo.whenLoaded;
await todo.transact((doc) => doc.getArray('items').push(['write the README']));
await todo.whenAcked(); // the relay has it on disk

// Blobs get random ids, are shared by user id (read_only or read_write), and revocable live.
const { id, handle: design } = client.blobs.create();
await design.transact((doc) => doc.getText('body').insert(0, 'first draft'));
await design.whenAcked(); // it exists on the relay once its first edit is there
await client.blobs.share(id, friendId, 'read_only'); // the friend finds it in blobs.sharedWithMe()

// A write the rules refuse fails at once, offline too, with a SyncError to branch on.
try {
  await client.userData.set('USER_PUBLIC', friendId, 'profile', { name: 'not me' });
} catch (error) {
  if (!(error instanceof SyncError && error.kind === 'Forbidden')) throw error;
  console.log(`refused: ${error.kind}`);
}

// What the friend sees, through the relay.
console.log(`recovery phrase: ${phrase.split(' ').length} words`);
console.log(
  `friend reads profile: ${JSON.stringify(await friend.userData.get('USER_PUBLIC', me, 'profile'))}`,
);
const incoming = await friend.blobs.sharedWithMe(); // no id to paste: what others shared with me
const shared = friend.blobs.open(incoming.find((share) => share.owner === me)?.blobId ?? id);
await shared.whenSynced;
console.log(`friend reads design: ${shared.doc.getText('body').toString()}`);
try {
  await friend.userData.get('USER_PRIVATE', me, 'diary');
  console.log('friend reads diary: yes');
} catch (error) {
  if (!(error instanceof SyncError)) throw error;
  console.log(`friend reads diary: ${error.kind}`);
}

await Promise.all([client.close(), friend.close()]);
