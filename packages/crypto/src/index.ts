export type { BrowserWrappedSeed } from './browser-seed.ts';
export { createSeedWrappingKey, unwrapSeedForBrowser, wrapSeedForBrowser } from './browser-seed.ts';
export type { Device, DeviceList, SignDeviceListOptions } from './device-list.ts';
export {
  checkDeviceListStep,
  deviceListHash,
  newDeviceId,
  readDeviceList,
  signDeviceList,
  verifyDeviceList,
  verifyDeviceListChain,
} from './device-list.ts';
export type { DocCipher, DocCipherOptions } from './doc-cipher.ts';
export { createDocCipher } from './doc-cipher.ts';
export type { DocKey } from './doc-key.ts';
export { createDocKey, DOC_KEY_BYTES, FIRST_EPOCH, isKeyId, KEY_ID_BYTES, rotateDocKey } from './doc-key.ts';
export type { DocKeyring } from './doc-keyring.ts';
export { DOC_NAME_HASH_BYTES, docNameHash } from './doc-name-hash.ts';
export type {
  AllowedAuthors,
  EnvelopeAuthor,
  EnvelopeChain,
  EnvelopeHeader,
  EnvelopeKind,
  OpenEnvelopeOptions,
  OpenedEnvelope,
  SealEnvelopeOptions,
  SnapshotCommitments,
  VerifyEnvelopeOptions,
} from './envelope.ts';
export {
  ENVELOPE_OVERHEAD,
  ENVELOPE_VERSION,
  openEnvelope,
  readEnvelopeHeader,
  sealEnvelope,
  verifyEnvelopeSignature,
} from './envelope.ts';
export type { GrantInfo, OpenedGrant, OpenGrantOptions, SealedGrant, SealGrantOptions } from './grant.ts';
export { openGrant, readGrant, sealGrant, verifyGrantSignature } from './grant.ts';
export type { StreamHead } from './history-clock.ts';
export { ENVELOPE_HASH_BYTES, envelopeHash, newStreamId, STREAM_ID_BYTES } from './history-clock.ts';
export type { Identity } from './identity.ts';
export { deriveIdentity, generateRootSeed, ROOT_SEED_BYTES } from './identity.ts';
export type { IdentityRotation } from './identity-rotation.ts';
export {
  countersignIdentityRotation,
  identityRotationMessage,
  signIdentityRotation,
  verifyIdentityRotation,
  verifyIdentityRotationCountersignature,
} from './identity-rotation.ts';
export type { KeyProofPurpose, KeyProofStatement } from './key-proof.ts';
export { isKeyProofPurpose, keyProofMessage, signKeyProof, verifyKeyProof } from './key-proof.ts';
export type { Member, MemberList, SignMemberListOptions } from './member-list.ts';
export {
  checkMemberListStep,
  memberListHash,
  memberListKeys,
  readMemberList,
  signMemberList,
  verifyMemberList,
  verifyMemberListChain,
} from './member-list.ts';
export type { MemoryDocKeyringOptions } from './memory-doc-keyring.ts';
export { MemoryDocKeyring } from './memory-doc-keyring.ts';
export { MIN_PADDED_BYTES, paddedLength } from './padding.ts';
export type { PassphraseStrength } from './passphrase-seed.ts';
export {
  isPassphraseWrappedSeed,
  unwrapSeedWithPassphrase,
  wrapSeedWithPassphrase,
} from './passphrase-seed.ts';
export { exportRecoveryPhrase, importRecoveryPhrase, RECOVERY_PHRASE_WORDS } from './recovery-phrase.ts';
export type { KeyOwner } from './safety-number.ts';
export { safetyNumber } from './safety-number.ts';
export type { SignedHead } from './signed-head.ts';
export { signHead, verifyHead } from './signed-head.ts';
export { ready } from './sodium.ts';
export { unwrapDocKey, WRAPPED_DOC_KEY_BYTES, wrapDocKey } from './wrapped-doc-key.ts';
