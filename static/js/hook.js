// The `window.rtcsvc` hook: read-only views of WebRTC internals that no person can see
// on screen, for browser tests and the devtools console (docs/client.md). Everything a
// person can see (screens, names, notices, chat, file cards, the self-view's corner) is
// tested on screen instead, so none of it is here. It changes nothing by itself.
//
//   rtcsvc.state            {id, joined, peers: [{id, connectionState, iceConnectionState,
//                             signalingState, channelOpen, polite, path, stats, restarts,
//                             iceRestarts, lastRestartReason}]}
//   rtcsvc.sas(peerId)      Promise of the SAS text of that connection (null until negotiated)
//   rtcsvc.sasOf(fpA, fpB)  Promise of the SAS of two fingerprint strings (for tamper tests)
//   rtcsvc.fingerprints(id) {local, remote} DTLS fingerprints of a peer connection
//   rtcsvc.outgoing(peerId) tracks we send to that peer [{kind, id, label}]
//   rtcsvc.remoteTracks(id) tracks we receive [{kind, id, readyState, muted, enabled}]
//   rtcsvc.receivedSha256(name) Promise of the hex SHA-256 of the bytes of a received file

import { sasOfFingerprints, fingerprintOf } from "./sas.js";

function peerSnapshot(link) {
  return {
    id: link.id,
    connectionState: link.pc.connectionState,
    iceConnectionState: link.pc.iceConnectionState,
    signalingState: link.pc.signalingState,
    channelOpen: link.channels.isOpen,
    polite: link.polite,
    path: link.path,
    stats: { ...link.stats },
    restarts: link.restarts,
    iceRestarts: link.iceRestarts,
    lastRestartReason: link.lastRestartReason,
  };
}

export function installHook(app) {
  const linkOf = (peerId) => (app.call ? app.call.links.get(peerId) : null);
  window.rtcsvc = Object.freeze({
    get state() {
      const call = app.call;
      return {
        id: call ? call.id : null,
        joined: !!(call && call.joined && !call.ended),
        peers: call ? [...call.links.values()].map(peerSnapshot) : [],
      };
    },
    async sas(peerId) {
      const link = linkOf(peerId);
      if (!link) return null;
      await link._updateSas();
      return link.sas ? link.sas.text : null;
    },
    async sasOf(a, b) {
      return (await sasOfFingerprints(a, b)).text;
    },
    fingerprints(peerId) {
      const link = linkOf(peerId);
      if (!link) return null;
      return {
        local: link.pc.localDescription && fingerprintOf(link.pc.localDescription.sdp),
        remote: link.pc.remoteDescription && fingerprintOf(link.pc.remoteDescription.sdp),
      };
    },
    outgoing(peerId) {
      const link = linkOf(peerId);
      return link ? link.outgoingTracks() : [];
    },
    remoteTracks(peerId) {
      const link = linkOf(peerId);
      return link
        ? link.remoteStream.getTracks().map((t) => ({ kind: t.kind, id: t.id, readyState: t.readyState, muted: t.muted, enabled: t.enabled }))
        : [];
    },
    async receivedSha256(name) {
      // The CSP (connect-src 'self') keeps fetch() away from blob: URLs, so read the Blob itself.
      const t = app.call && app.call.transfers.find((x) => x.direction === "in" && x.name === name && x.blob);
      if (!t) return null;
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await t.blob.arrayBuffer()));
      return Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("");
    },
  });
}
