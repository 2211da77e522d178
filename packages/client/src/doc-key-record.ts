import type { KeyValueStore } from '@scopesync/core';
import { KV_TABLES } from './client-store.ts';

// Where an encrypted doc's keys are kept on this device, apart from the code that uses them:
// asking whether a blob is encrypted must not load libsodium.

/** The record (table `keys`) of `docName`'s keys on this device. */
export function docKeyRecord(docName: string): string {
  return `doc:${docName}`;
}

/** True when this device holds keys for `docName` (an encrypted doc it has opened before). */
export async function hasDocKeys(kv: KeyValueStore, docName: string): Promise<boolean> {
  return (await kv.get(KV_TABLES.keys, docKeyRecord(docName))) !== undefined;
}
