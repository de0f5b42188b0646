// Perfect negotiation's roles (static/js/peer.js): exactly one side of a pair is polite, and
// both sides agree which.
import test from "node:test";
import assert from "node:assert/strict";
import { isPolite } from "../../static/js/peer.js";

test("of two ids, exactly one side is polite, and both ends agree", () => {
  const ids = ["a", "b", "Zq9", "zq9", "0001", "peer-x", "peer_y", "KJH87sd-_x"];
  for (const x of ids) {
    for (const y of ids) {
      if (x === y) continue;
      assert.notEqual(isPolite(x, y), isPolite(y, x), `${x} / ${y}`);
    }
  }
});

test("the side whose id sorts first is polite", () => {
  assert.equal(isPolite("a", "b"), true);
  assert.equal(isPolite("b", "a"), false);
  assert.equal(isPolite("B", "a"), true); // code-unit order, as both browsers compare
});
