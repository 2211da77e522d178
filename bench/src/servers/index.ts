import { startHocuspocus } from './hocuspocus.ts';
import type { PeerName, StartPeer } from './peer.ts';
import { startScopesync } from './scopesync.ts';
import { startYWebsocket } from './y-websocket.ts';

/** The start function of each server. */
export const START: Record<PeerName, StartPeer> = {
  scopesync: startScopesync,
  'y-websocket': startYWebsocket,
  hocuspocus: startHocuspocus,
};
