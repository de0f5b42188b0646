// Short authentication string (SAS) from the two DTLS certificate fingerprints.
//
// Each browser proves its DTLS certificate against the `a=fingerprint` line it put
// in its SDP. If both people see the same few symbols, the fingerprints each side
// received are the ones the other side sent, so no one rewrote the SDP on the way
// (the signaling server included). Both ends must derive the same string, so the
// two fingerprints are normalised and sorted before hashing; the hash is SHA-256
// (crypto.subtle) and five 6-bit groups (30 bits) pick symbols from the table below.

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
  if (!m) return null;
  return `${m[1].toLowerCase()} ${m[2].toUpperCase()}`;
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

/** The SAS of a connection, from its local and remote descriptions. */
export async function sasOfConnection(pc) {
  const local = pc.localDescription && fingerprintOf(pc.localDescription.sdp);
  const remote = pc.remoteDescription && fingerprintOf(pc.remoteDescription.sdp);
  if (!local || !remote) return null;
  return sasOfFingerprints(local, remote);
}
