// Room names and links (static/js/rooms.js).
import test from "node:test";
import assert from "node:assert/strict";
import {
  ROOM_RE, newRoomName, parseRoom, roomFromPath, inviteTokenFrom, inviteLink,
} from "../../static/js/rooms.js";

test("a new room name is 22 characters of base64url carrying 128 bits", () => {
  const name = newRoomName();
  assert.match(name, /^[A-Za-z0-9_-]{22}$/);
  assert.ok(ROOM_RE.test(name));
  assert.equal(newRoomName(new Uint8Array(16).fill(255)), "_____________________w");
  assert.equal(newRoomName(new Uint8Array(16)), "AAAAAAAAAAAAAAAAAAAAAA");
});

test("room names made one after another differ", () => {
  const names = new Set(Array.from({ length: 1000 }, () => newRoomName()));
  assert.equal(names.size, 1000);
});

test("a pasted link of any host, a path or a bare name gives the room", () => {
  assert.equal(parseRoom("https://call.example/r/team-1"), "team-1");
  assert.equal(parseRoom("  https://call.example/r/team-1/  "), "team-1");
  assert.equal(parseRoom("https://call.example/r/team?token=abc"), "team");
  assert.equal(parseRoom("/r/abc_DEF"), "abc_DEF");
  assert.equal(parseRoom("abc_DEF-9"), "abc_DEF-9");
});

test("anything else is not a room", () => {
  for (const bad of ["", "   ", null, undefined, "not a room!", "https://call.example/",
    "https://call.example/r/", "https://call.example/x/team", "https://call.example/r/a/b",
    "https://call.example/r/" + "a".repeat(65), "a".repeat(65), "http://[::1"]) {
    assert.equal(parseRoom(bad), null, String(bad));
  }
});

test("the room of a page path", () => {
  assert.equal(roomFromPath("/r/abc"), "abc");
  assert.equal(roomFromPath("/r/abc/"), "abc");
  assert.equal(roomFromPath("/"), null);
  assert.equal(roomFromPath("/r/abc/def"), null);
  assert.equal(roomFromPath("/r/a%20b"), null);
});

test("an invite token is taken from the query only when well formed", () => {
  assert.equal(inviteTokenFrom("?token=v1.abc-_~"), "v1.abc-_~");
  assert.equal(inviteTokenFrom("?x=1&token=t0k"), "t0k");
  assert.equal(inviteTokenFrom(""), null);
  assert.equal(inviteTokenFrom("?token="), null);
  assert.equal(inviteTokenFrom("?token=%3Cscript%3E"), null);
  assert.equal(inviteTokenFrom(`?token=${"a".repeat(513)}`), null);
});

test("an invite link is the room's page, with the token of a closed room", () => {
  assert.equal(inviteLink("https://call.example", "team"), "https://call.example/r/team");
  assert.equal(inviteLink("https://call.example:8443", "team", "v1.x"), "https://call.example:8443/r/team?token=v1.x");
  // What the link says, the landing page reads back.
  const link = inviteLink("https://call.example", "team", "v1.x");
  assert.equal(parseRoom(link), "team");
  assert.equal(inviteTokenFrom(new URL(link).search), "v1.x");
});
