// Short authentication string (SAS) from the two DTLS certificate fingerprints.
//
// Each browser proves its DTLS certificate against the `a=fingerprint` line it put
// in its SDP. If both people see the same few symbols, the certificates each side
// met in its DTLS handshake are the ones the other side holds, so no one rewrote the
// SDP on the way (the signaling server included). Both ends must derive the same
// string, so the two fingerprints are normalised and sorted before hashing; the hash is
// SHA-256 (crypto.subtle) and five 6-bit groups (30 bits) pick symbols from the table below.
//
// Where from: the remote fingerprint is the SHA-256 of the certificate the DTLS transport
// received (`RTCDtlsTransport.getRemoteCertificates()`), and ours that of the certificate
// we gave the connection (`getConfiguration().certificates`, `getFingerprints()`), so the
// code does not depend on how the browser re-serialises the remote SDP. Where those are not
// available (before the handshake, a browser without getRemoteCertificates, a connection
// with the browser's own certificate) each side falls back to the `a=fingerprint` lines of
// the descriptions, which give the same string whenever nothing was tampered with.

// 64 easy-to-say words, each with an emoji. Distinct first sounds where possible.
const SYMBOLS = [
  ["🍎", "apple"], ["🐝", "bee"], ["🎈", "balloon"], ["🚲", "bicycle"],
  ["📘", "book"], ["🌵", "cactus"], ["🎂", "cake"], ["🐪", "camel"],
  ["🥕", "carrot"], ["🐱", "cat"], ["🍒", "cherry"], ["🕰️", "clock"],
  ["☁️", "cloud"], ["🌽", "corn"], ["🦀", "crab"], ["👑", "crown"],
  ["🐬", "dolphin"], ["🍩", "donut"], ["🚪", "door"], ["🦆", "duck"],
  ["🦅", "eagle"], ["🐘", "elephant"], ["🪶", "feather"], ["🔥", "fire"],
  ["🐟", "fish"], ["🌸", "flower"], ["🦊", "fox"], ["🐸", "frog"],
  ["🎸", "guitar"], ["🔨", "hammer"], ["🎧", "headphones"], ["❤️", "heart"],
  ["🦔", "hedgehog"], ["🐴", "horse"], ["🏠", "house"], ["🧊", "ice"],
  ["🔑", "key"], ["🪁", "kite"], ["🍋", "lemon"], ["💡", "lightbulb"],
  ["🦁", "lion"], ["🔒", "lock"], ["🍁", "maple"], ["🌙", "moon"],
  ["🍄", "mushroom"], ["🐙", "octopus"], ["🦉", "owl"], ["🌴", "palm"],
  ["🐼", "panda"], ["🍐", "pear"], ["✏️", "pencil"], ["🐧", "penguin"],
  ["🍕", "pizza"], ["🚀", "rocket"], ["🌹", "rose"], ["⛵", "sailboat"],
  ["⭐", "star"], ["🍓", "strawberry"], ["☀️", "sun"], ["🐢", "turtle"],
  ["☂️", "umbrella"], ["🎻", "violin"], ["🐋", "whale"], ["🦓", "zebra"],
];
const GROUPS = 5;
const CONTEXT = "rtcsvc-sas-v1";

/** The fingerprint of one SDP, normalised: "sha-256 AB:CD:…" (null when absent). */
export function fingerprintOf(sdp) {
  if (typeof sdp !== "string") return null;
  const m = sdp.match(/^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$/m);
  return m ? normalFingerprint(m[1], m[2]) : null;
}

async function sha256(text) {
  const bytes = new TextEncoder().encode(text);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** The SAS of two fingerprints, order-independent: {emoji, words, text}. */
export async function sasOfFingerprints(a, b) {
  if (!a || !b) throw new Error("both fingerprints are needed");
  const [first, second] = [a, b].sort();
  const digest = await sha256(`${CONTEXT}\n${first}\n${second}`);
  // Read the digest as a bit string, 6 bits per symbol.
  let acc = 0;
  let bits = 0;
  let i = 0;
  const picks = [];
  while (picks.length < GROUPS) {
    if (bits < 6) {
      acc = ((acc << 8) | digest[i++]) & 0xffff;
      bits += 8;
    }
    bits -= 6;
    picks.push((acc >> bits) & 63);
  }
  const chosen = picks.map((n) => SYMBOLS[n]);
  const emoji = chosen.map(([e]) => e).join(" ");
  const words = chosen.map(([, w]) => w).join(" ");
  return { emoji, words, text: `${emoji} · ${words}` };
}

const HEX = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, "0").toUpperCase()).join(":");

/** "sha-256 AB:CD:…" from an algorithm and a hex value (any case, with colons). */
export function normalFingerprint(algorithm, value) {
  if (typeof algorithm !== "string" || typeof value !== "string" || !/^[0-9A-Fa-f:]+$/.test(value)) return null;
  return `${algorithm.toLowerCase()} ${value.toUpperCase()}`;
}

/** The SHA-256 fingerprint of a DER certificate (an ArrayBuffer), as an SDP would state it. */
export async function fingerprintOfCertificate(der) {
  return `sha-256 ${HEX(await sha256Bytes(der))}`;
}

async function sha256Bytes(buffer) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
}

/** The DTLS transport of a connection (its data channels', else its senders' or receivers'). */
export function dtlsTransportOf(pc) {
  if (pc.sctp && pc.sctp.transport) return pc.sctp.transport;
  const all = [...(pc.getSenders ? pc.getSenders() : []), ...(pc.getReceivers ? pc.getReceivers() : [])];
  const withTransport = all.find((x) => x.transport);
  return withTransport ? withTransport.transport : null;
}

/** Our SHA-256 fingerprint from the certificate we configured (null when we gave none). */
export function localCertificateFingerprint(pc) {
  const certs = (pc.getConfiguration && pc.getConfiguration().certificates) || [];
  for (const cert of certs) {
    const fps = cert.getFingerprints ? cert.getFingerprints() : [];
    const fp = fps.find((f) => String(f.algorithm).toLowerCase() === "sha-256");
    if (fp) return normalFingerprint(fp.algorithm, fp.value);
  }
  return null;
}

/** The SHA-256 fingerprint of the certificate the DTLS handshake presented (null before it). */
export async function remoteCertificateFingerprint(pc) {
  const transport = dtlsTransportOf(pc);
  if (!transport || typeof transport.getRemoteCertificates !== "function") return null;
  const certs = transport.getRemoteCertificates();
  if (!certs || !certs.length) return null;
  return fingerprintOfCertificate(certs[0]);
}

/**
 * The two fingerprints a connection's SAS is made of: {local, remote, source}, source "dtls"
 * (the handshake's certificate; ours from our certificate, else from our own description if it
 * states SHA-256) or "sdp" (both from the descriptions); null while either is unknown.
 */
export async function connectionFingerprints(pc) {
  const sdpLocal = pc.localDescription ? fingerprintOf(pc.localDescription.sdp) : null;
  const remote = await remoteCertificateFingerprint(pc);
  if (remote) {
    const local = localCertificateFingerprint(pc) || (sdpLocal && sdpLocal.startsWith("sha-256 ") ? sdpLocal : null);
    if (local) return { local, remote, source: "dtls" };
  }
  const sdpRemote = pc.remoteDescription ? fingerprintOf(pc.remoteDescription.sdp) : null;
  if (!sdpLocal || !sdpRemote) return null;
  return { local: sdpLocal, remote: sdpRemote, source: "sdp" };
}

/** The SAS of a connection: {emoji, words, text, source}, or null while not negotiated. */
export async function sasOfConnection(pc) {
  const fps = await connectionFingerprints(pc);
  if (!fps) return null;
  return { ...(await sasOfFingerprints(fps.local, fps.remote)), source: fps.source };
}
