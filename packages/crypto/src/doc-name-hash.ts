import { parseDocName } from '@scopesync/core';
import { concatBytes, utf8 } from './bytes.ts';
import { sodium } from './sodium.ts';

/** Bytes in a document name hash. */
export const DOC_NAME_HASH_BYTES = 32;

const DOMAIN = utf8('scopesync:doc-name:v1\0');

/**
 * BLAKE2b-256 of a document name, as carried in envelope headers: lets the relay check that an
 * envelope was sealed for the document it is appended to, without the header repeating the name.
 * BadRequest for a name outside the document-name grammar. Requires `ready()`.
 */
export function docNameHash(docName: string): Uint8Array {
  parseDocName(docName);
  return sodium().crypto_generichash(DOC_NAME_HASH_BYTES, concatBytes(DOMAIN, utf8(docName)), null);
}
