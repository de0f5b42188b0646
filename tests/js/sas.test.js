// The security code (static/js/sas.js): both ends must derive the same words, and a changed
// fingerprint must change them.
import test from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  fingerprintOf, sasOfFingerprints, sasOfConnection, connectionFingerprints, fingerprintOfCertificate,
} from "../../static/js/sas.js";

const FP_A = "sha-256 " + Array.from({ length: 32 }, (_, i) => (i * 7 % 256).toString(16).padStart(2, "0").toUpperCase()).join(":");
const FP_B = "sha-256 " + Array.from({ length: 32 }, (_, i) => (i * 13 % 256).toString(16).padStart(2, "0").toUpperCase()).join(":");

test("the fingerprint line of an SDP, normalised", () => {
  const sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:SHA-256 ab:cd:EF\r\na=setup:actpass\r\n";
  assert.equal(fingerprintOf(sdp), "sha-256 AB:CD:EF");
  assert.equal(fingerprintOf("v=0\r\n"), null);
  assert.equal(fingerprintOf(null), null);
});

test("the code is five emoji and five words, the same whichever side computes it", async () => {
  const ab = await sasOfFingerprints(FP_A, FP_B);
  const ba = await sasOfFingerprints(FP_B, FP_A);
  assert.deepEqual(ab, ba);
  assert.equal(ab.words.split(" ").length, 5);
  assert.equal(ab.text, `${ab.emoji} · ${ab.words}`);
  assert.match(ab.words, /^[a-z]+( [a-z]+){4}$/);
});

test("one changed hex digit of either fingerprint changes the code", async () => {
  const base = (await sasOfFingerprints(FP_A, FP_B)).words;
  const flip = (fp, i) => fp.slice(0, i) + (fp[i] === "A" ? "B" : "A") + fp.slice(i + 1);
  assert.notEqual((await sasOfFingerprints(flip(FP_A, 8), FP_B)).words, base);
  assert.notEqual((await sasOfFingerprints(FP_A, flip(FP_B, FP_B.length - 1))).words, base);
});

test("both fingerprints are needed", async () => {
  await assert.rejects(sasOfFingerprints(FP_A, null));
});

// ---- from the DTLS transport's certificates ----

const der = (seed) => new Uint8Array(randomBytes(300 + seed)).buffer; // a certificate's bytes
const fpOf = (buf) => "sha-256 " + createHash("sha256").update(Buffer.from(buf)).digest("hex").toUpperCase().match(/../g).join(":");
const sdpWith = (fp) => (fp ? `v=0\r\na=fingerprint:${fp.split(" ")[0]} ${fp.split(" ")[1]}\r\n` : "v=0\r\n");
const certificate = (buf) => ({ getFingerprints: () => [{ algorithm: "sha-256", value: fpOf(buf).slice(8).toLowerCase() }] });

/** A connection as the browser shows it: our certificate, the peer's from DTLS, and the SDPs. */
function fakePc({ ours, theirs, localSdp = null, remoteSdp = null, configured = true, dtls = true, presented = true }) {
  const transport = { state: "connected" };
  if (dtls) transport.getRemoteCertificates = () => (presented ? [theirs] : []);
  return {
    getConfiguration: () => ({ certificates: configured ? [certificate(ours)] : [] }),
    sctp: { transport },
    localDescription: { sdp: sdpWith(localSdp) },
    remoteDescription: { sdp: sdpWith(remoteSdp) },
  };
}

test("a certificate's fingerprint is the SHA-256 of its DER bytes, as SDP writes it", async () => {
  const a = der(1);
  assert.equal(await fingerprintOfCertificate(a), fpOf(a));
});

test("both ends derive the same code from the certificates, whatever their SDP text says", async () => {
  const [ca, cb] = [der(1), der(2)];
  // The remote SDPs as the browsers re-serialised them carry something else: not used.
  const pa = fakePc({ ours: ca, theirs: cb, localSdp: fpOf(ca), remoteSdp: FP_A });
  const pb = fakePc({ ours: cb, theirs: ca, localSdp: fpOf(cb), remoteSdp: FP_B });
  const [sa, sb] = [await sasOfConnection(pa), await sasOfConnection(pb)];
  assert.equal(sa.source, "dtls");
  assert.equal(sa.text, sb.text);
  assert.equal(sa.text, (await sasOfFingerprints(fpOf(ca), fpOf(cb))).text);
  assert.deepEqual(await connectionFingerprints(pa), { local: fpOf(ca), remote: fpOf(cb), source: "dtls" });
});

test("another certificate in the handshake (a man in the middle) changes the code", async () => {
  const [ca, cb, cm] = [der(1), der(2), der(3)];
  const honest = await sasOfConnection(fakePc({ ours: ca, theirs: cb }));
  const fooled = await sasOfConnection(fakePc({ ours: ca, theirs: cm, remoteSdp: fpOf(cb) }));
  assert.notEqual(honest.text, fooled.text);
});

test("without our own certificate, our description's SHA-256 line stands in for it", async () => {
  const [ca, cb] = [der(1), der(2)];
  const s = await connectionFingerprints(fakePc({ ours: ca, theirs: cb, configured: false, localSdp: fpOf(ca) }));
  assert.deepEqual(s, { local: fpOf(ca), remote: fpOf(cb), source: "dtls" });
});

test("falls back to the descriptions before the handshake, or where the browser has no getRemoteCertificates", async () => {
  const [ca, cb] = [der(1), der(2)];
  const sdp = { local: fpOf(ca), remote: fpOf(cb), source: "sdp" };
  const before = fakePc({ ours: ca, theirs: cb, localSdp: fpOf(ca), remoteSdp: fpOf(cb), presented: false });
  assert.deepEqual(await connectionFingerprints(before), sdp);
  const older = fakePc({ ours: ca, theirs: cb, localSdp: fpOf(ca), remoteSdp: fpOf(cb), dtls: false });
  assert.deepEqual(await connectionFingerprints(older), sdp);
  // The two ways give the same code when nothing was tampered with: one end may use either.
  const now = fakePc({ ours: cb, theirs: ca });
  assert.equal((await sasOfConnection(older)).text, (await sasOfConnection(now)).text);
  // A local line in another hash cannot pair with a SHA-256 of the certificate: SDP for both.
  const sha1 = "sha-1 " + "AB:".repeat(19) + "AB";
  const odd = fakePc({ ours: ca, theirs: cb, configured: false, localSdp: sha1, remoteSdp: fpOf(cb) });
  assert.deepEqual(await connectionFingerprints(odd), { local: sha1, remote: fpOf(cb), source: "sdp" });
  assert.equal(await sasOfConnection(fakePc({ ours: ca, theirs: cb, configured: false, presented: false })), null);
});

test("a transport found through the senders when there is no SCTP transport", async () => {
  const [ca, cb] = [der(1), der(2)];
  const pc = fakePc({ ours: ca, theirs: cb });
  const transport = pc.sctp.transport;
  delete pc.sctp;
  pc.getSenders = () => [{ transport: null }, { transport }];
  assert.equal((await connectionFingerprints(pc)).source, "dtls");
});
