// What other peers can make this browser hold or show (static/js/intake.js).
import test from "node:test";
import assert from "node:assert/strict";
import { Intake, LIMITS, cleanName, cleanFileName, validTransferId, overflow } from "../../static/js/intake.js";

const MiB = 1024 * 1024;

test("names lose bidi controls, control characters and line breaks, and are bounded", () => {
  // "<RLO>ecilA" reads "Alice"; "invoice<RLO>fdp.exe" reads "invoiceexe.pdf".
  assert.equal(cleanName("\u202EecilA", 40), "ecilA");
  assert.equal(cleanFileName("invoice\u202Efdp.exe"), "invoicefdp.exe");
  for (const c of ["\u202A", "\u202B", "\u202C", "\u202D", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200E", "\u200F", "\u061C", "\u0000", "\u001B", "\u007F", "\u0085", "\u2028", "\u2029"]) {
    assert.equal(cleanName(`a${c}b`, 40), "ab", `U+${c.codePointAt(0).toString(16)}`);
  }
  assert.equal(cleanName("  Ada \t  Lovelace\n ", 40), "Ada Lovelace");
  assert.equal(cleanName("😀".repeat(50), 40), "😀".repeat(40)); // code points, not halves of pairs
  assert.equal(cleanName("زهرة", 40), "زهرة"); // right-to-left letters themselves stay
  assert.equal(cleanName(42, 40), "");
  assert.equal(cleanFileName("a/b\\c"), "a_b_c");
  assert.equal(cleanFileName("\u202E"), "file");
});

test("transfer ids are short ASCII tokens", () => {
  assert.ok(validTransferId("0123456789abcdef"));
  for (const bad of ["", "x".repeat(65), "a b", "a/b", "é", 7, null, ["a"]]) assert.equal(validTransferId(bad), false);
});

test("a peer's reused id is refused; the same id from another peer is that peer's own", () => {
  const intake = new Intake();
  assert.equal(intake.judge("alice", { id: "x1", size: 10 }), null);
  assert.equal(intake.judge("alice", { id: "x1", size: 10 }), "reused");
  // Refusing it would let a fast peer (who saw Alice's offer) get Alice's own file refused.
  assert.equal(intake.judge("mallory", { id: "x2", size: 10 }), null);
  assert.equal(intake.judge("bob", { id: "x2", size: 10 }), null);
  assert.equal(intake.judge("mallory", { id: "x2", size: 10 }), "reused");
});

test("an id refused for any reason stays used", () => {
  const intake = new Intake();
  assert.equal(intake.judge("m", { id: "a", size: 10 }, { busy: true }), "busy");
  assert.equal(intake.judge("m", { id: "a", size: 10 }), "reused");
  assert.equal(intake.judge("m", { id: "b", size: 2 ** 40 }), "too-large");
  assert.equal(intake.judge("m", { id: "b", size: 1 }), "reused");
});

test("a peer offering more than idsPerPeer files is refused after that, others are not", () => {
  const intake = new Intake({ ...LIMITS, idsPerPeer: 3 });
  for (const id of ["a", "b", "c"]) assert.equal(intake.judge("m", { id, size: 1 }), null);
  assert.equal(intake.judge("m", { id: "d", size: 1 }), "too-many");
  assert.equal(intake.judge("alice", { id: "d", size: 1 }), null);
  intake.forget("m");
  assert.equal(intake.seen.has("m"), false);
});

test("received files share one allowance: over it an offer is refused, freeing makes room", () => {
  assert.equal(LIMITS.heldBytes, 512 * MiB);
  const intake = new Intake();
  assert.equal(intake.judge("m", { id: "a", size: 512 * MiB + 1 }), "too-large");
  assert.equal(intake.judge("m", { id: "b", size: 300 * MiB }), null);
  assert.ok(intake.reserve(300 * MiB));
  // Another peer's file no longer fits beside it, and an accept past the room holds nothing.
  assert.equal(intake.judge("alice", { id: "c", size: 300 * MiB }), "no-room");
  assert.equal(intake.reserve(300 * MiB), false);
  assert.equal(intake.held, 300 * MiB);
  intake.release(300 * MiB);
  assert.equal(intake.judge("alice", { id: "d", size: 300 * MiB }), null);
  intake.release(1);
  assert.equal(intake.held, 0);
});

test("overflow picks each owner's oldest removable items past the cap", () => {
  const items = [
    { o: "m", n: 1, busy: true }, { o: "a", n: 2 }, { o: "m", n: 3 }, { o: "m", n: 4 }, { o: "m", n: 5 },
  ];
  const out = overflow(items, 2, (x) => x.o === "m", (x) => !x.busy);
  assert.deepEqual(out.map((x) => x.n), [3, 4]);
  assert.deepEqual(overflow(items, 5, (x) => x.o === "m"), []);
});
