"""Calls connect through the networks corporate users sit behind: the network matrix.

Each profile builds a small simulated internet in network namespaces (``tests/support/netns.py``):
the real ``twistd rtcsvc`` on its own TLS listener and the real coturn running the shipped
``deploy/coturn/turnserver.conf`` in a server namespace, two callers each behind a router of
the profile's kind, headless Chromium inside each caller namespace trusting a throwaway CA. A
profile passes when video flows both ways and both browsers' selected candidate pair is the
kind the profile allows (host, relay over UDP, TCP or TLS), polled until it settles.

Every profile also checks what rtcsvc itself may know (issue 14, item 5): its log never holds a
caller's candidate address (only the documented ``client=`` of a join line), and the call-setup
reports the browsers send carry no address at all.

``layout`` is where TURN over TLS on 443 lives: ``second-address`` is deploy/README.md's layout
behind Apache (coturn's TLS on 443 of a second address), ``one-port`` its layout without Apache
(rtcsvc's own 443 passes TURN to coturn's proxy port). Profiles that need 443 run per layout and
assert a TLS relay from that layout's ``turns:<name>:443`` URL.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.support.browser import (Participant, playwright_driver,  # noqa: F401  (fixtures)
                                   record_sent_frames, room, sent_messages)
from tests.support.netns import (LAYOUTS, PUBLIC_GATEWAY, SERVER_ADDRESS, SITE_NAME,  # noqa: F401
                                  CallNetwork, StrictTLS, topology)
from tests.support.service import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netmatrix]

#: How long a profile may take to reach its expected pair with video both ways.
SETTLE_S = 30
#: The app gives up on a call that cannot connect this long after the peer connection
#: starts (static/js/escalation.js BOUNDS: 10 s, ICE restart, 10 s; 15 s more with a relay
#: rung) and says so on the tile; the slack is for a loaded 2-core machine.
GIVES_UP_S, GIVES_UP_WITH_RELAY_S, SLACK_S = 20, 35, 8
#: The relay-only rung begins this long after a call that never connects started.
RELAY_RUNG_S = 20

# Every RTCPeerConnection the app makes, kept for the test (its configuration untouched).
RECORD_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__netmatrixPCs = [];
  window.__netmatrixIceErrors = [];  // which ICE server failed and why: no addresses
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__netmatrixPCs.push(this);
      this.addEventListener("icecandidateerror", (e) => window.__netmatrixIceErrors.push(
        `${e.url} ${e.errorCode} ${e.errorText}`));
    }
  };
})();
"""

# The selected pair of each live peer connection: candidate kinds only, never an address or port.
SELECTED_PAIR_KINDS = """
async () => {
  const out = [];
  for (const pc of window.__netmatrixPCs || []) {
    if (pc.connectionState === "closed") continue;
    const entry = {connection: pc.connectionState, ice: pc.iceConnectionState, pair: null};
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== "transport" || !s.selectedCandidatePairId) return;
      const pair = stats.get(s.selectedCandidatePairId);
      if (!pair) return;
      const local = stats.get(pair.localCandidateId) || {};
      const remote = stats.get(pair.remoteCandidateId) || {};
      entry.pair = {
        local: local.candidateType, relayProtocol: local.relayProtocol || null,
        url: local.url || null,  // the STUN/TURN URL the local candidate came from: a name
        protocol: local.protocol, remote: remote.candidateType,
        state: pair.state, bytesReceived: pair.bytesReceived, bytesSent: pair.bytesSent,
      };
    });
    out.push(entry);
  }
  return out;
}
"""


# ---- what each profile expects of a selected pair (in a layout) ----------------------------------

def host_pair(pair, layout):
    return pair["local"] == "host" and pair["remote"] == "host"


def relay_over(protocol):
    def check(pair, layout):
        return pair["local"] == "relay" and pair["relayProtocol"] == protocol
    check.__name__ = f"relay_over_{protocol}"
    return check


def relay_over_tls_on_443(pair, layout):
    """A TLS relay from the layout's turns: URL on port 443: turn443.chat.test (second
    address) or the site's own name (one-port)."""
    return (pair["local"] == "relay" and pair["relayProtocol"] == "tls"
            and pair["url"] == layout.turns443_url)


def through_a_relay_over_udp(pair, layout):
    """Symmetric NAT on both sides: one side's relay is enough (relay <-> peer-reflexive)."""
    if pair["local"] == "relay":
        return pair["relayProtocol"] == "udp"
    return pair["remote"] == "relay"


@dataclass(frozen=True)
class Profile:
    """Both callers sit behind a router of ``kind``; the call must settle on ``expected``."""

    kind: str
    expected: Callable[[dict, object], bool]   # (selected pair, layout)
    path: str                      # what the app's setup report must say: direct or relay
    layouts: tuple[str, ...] = ("second-address",)
    proxy_credentials: tuple[str, str] | None = None


PROXY_USER = ("alice-corp", "s3cret pass")

PROFILES = {
    "open": Profile("open", host_pair, "direct"),
    "symmetric-nat": Profile("symmetric-nat", through_a_relay_over_udp, "relay"),
    "udp-blocked": Profile("udp-blocked", relay_over("tcp"), "relay"),
    "tcp443-only": Profile("tcp443-only", relay_over_tls_on_443, "relay", tuple(LAYOUTS)),
    "proxy": Profile("proxy", relay_over_tls_on_443, "relay", tuple(LAYOUTS)),
    # Chromium has no flag for proxy credentials; Playwright answers the page's 407 as a
    # person would, and Chromium reuses them for the TURN tunnel.
    "proxy-auth": Profile("proxy", relay_over_tls_on_443, "relay", tuple(LAYOUTS), PROXY_USER),
}


def profile_params():
    return [pytest.param(name, layout, id=f"{name}-{layout}")
            for name, profile in PROFILES.items() for layout in profile.layouts]


# ---- fixtures -------------------------------------------------------------------------------------

class CallUnderTest:
    """Two people on a call network: Alice and Bob, each with their own browser."""

    def __init__(self, net: CallNetwork, playwright, room: str, kinds: tuple[str, str],
                 proxy_credentials=None):
        self.net = net
        self.room = room
        self.people = []
        self.sent_frames: dict[str, list[str]] = {}
        for label, kind in zip(("alice", "bob"), kinds):
            caller = net.add_caller(label, kind, proxy_credentials=proxy_credentials)
            browser = net.launch_browser(playwright, caller, proxy_credentials=proxy_credentials)
            person = Participant(StrictTLS(browser), net.site_url, name=label.title())
            person.page.add_init_script(RECORD_PEER_CONNECTIONS)
            self.sent_frames[label] = record_sent_frames(person.page)
            self.people.append(person)
        self.alice, self.bob = self.people

    def join(self):
        for person in self.people:
            try:
                try:
                    person.join(self.room)
                except PlaywrightError as e:
                    # Chromium aborts a load when it sees its network change (seen once under
                    # load, while the namespaces were fresh): a person would reload.
                    if "ERR_NETWORK_CHANGED" not in str(e):
                        raise
                    person.join(self.room)
            except (AssertionError, TimeoutError) as e:
                pytest.fail(self.explain(f"{person.name} could not join: {e}\n"
                                         f"page console: {person.console[-15:]}"))

    def expect_media_both_ways(self, failure: str) -> None:
        """Alice and Bob connected to each other with video flowing both ways; else the test
        fails with ``failure`` and the evidence."""
        try:
            self.alice.wait_connected_to(1, timeout=SETTLE_S * 1000)
            self.bob.wait_connected_to(1, timeout=SETTLE_S * 1000)
            self.alice.wait_media_flowing(self.bob.id)
            self.bob.wait_media_flowing(self.alice.id)
        except TimeoutError as e:
            pytest.fail(self.explain(f"{failure}: {e}"))

    def pairs(self) -> dict[str, list]:
        return {p.name: p.page.evaluate(SELECTED_PAIR_KINDS) for p in self.people}

    def explain(self, what: str, pairs=None) -> str:
        pairs = pairs if pairs is not None else self.safe_pairs()
        errors = {}
        for person in self.people:
            try:
                errors[person.name] = person.page.evaluate("window.__netmatrixIceErrors")
            except Exception as e:  # the page or browser is gone
                errors[person.name] = f"<unavailable: {e}>"
        return (f"{what}\nselected pairs (kinds only): {json.dumps(pairs, indent=1)}\n"
                f"ICE server errors: {json.dumps(errors, indent=1)}\n{self.net.diagnostics()}")

    def safe_pairs(self):
        try:
            return self.pairs()
        except Exception as e:  # a browser that died is itself the finding
            return f"<unavailable: {e}>"

    def wait_for_pairs(self, expected, timeout: float = SETTLE_S) -> dict:
        """Poll until every person has one connected peer connection whose selected pair is
        ``expected`` and moving bytes, twice in a row (an early sample can show a pair that is
        about to be replaced)."""
        deadline = time.monotonic() + timeout
        agreed = 0
        last = None
        while time.monotonic() < deadline:
            last = self.pairs()
            ok = all(
                len(entries) == 1 and entries[0]["connection"] == "connected"
                and entries[0]["pair"] is not None and expected(entries[0]["pair"], self.net.layout)
                and entries[0]["pair"]["bytesReceived"] > 0
                for entries in last.values()
            )
            agreed = agreed + 1 if ok else 0
            if agreed >= 2:
                return last
            time.sleep(0.5)
        pytest.fail(self.explain(f"no settled {expected.__name__} pair within {timeout} s", last))

    def reports(self, label: str) -> list[dict]:
        """The call-setup telemetry (``report`` messages) this person's app sent to rtcsvc."""
        return sent_messages(self.sent_frames[label], "report")


@pytest.fixture
def call(topology, playwright_driver, room):  # noqa: F811
    """``call(layout, kinds, stun_only=False, proxy_credentials=None)`` -> a CallUnderTest."""
    def make(layout: str, kinds, *, stun_only=False, proxy_credentials=None,
             coturn_full_chain=True):
        net = CallNetwork(topology, LAYOUTS[layout](), stun_only=stun_only,
                          coturn_full_chain=coturn_full_chain)
        return CallUnderTest(net, playwright_driver, room, kinds, proxy_credentials)
    return make


# ---- item 5: what rtcsvc may know ------------------------------------------------------------

IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def assert_no_candidate_addresses(call: CallUnderTest) -> None:
    """rtcsvc's log holds no address but the ones its own sockets saw (a caller's public address
    in access and join lines, its own), no SDP and no candidate line; the browsers' call-setup
    reports hold no address at all. A caller's LAN address reaches rtcsvc only inside ICE
    candidates, so it showing up anywhere means a candidate was logged."""
    seen_by_sockets = {"127.0.0.1", "0.0.0.0", *call.net.layout.host_map.values()}
    for caller in call.net.callers:
        seen_by_sockets.add(caller.wan_address)
        if caller.kind == "open":
            seen_by_sockets.add(caller.address)
    for line in call.net.rtcsvc_log.read_text(errors="replace").splitlines():
        leaked = [a for a in IPV4.findall(line) if a not in seen_by_sockets]
        assert not leaked, f"rtcsvc logged an address no socket of its own saw: {line}"
        assert not re.search(r"candidate|a=fingerprint|ufrag|typ (host|srflx|relay)", line), line
    for person in ("alice", "bob"):
        for report in call.reports(person):
            assert not IPV4.search(json.dumps(report)), report


# ---- the profiles ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, layout", profile_params())
def test_call_connects_with_the_expected_candidate_pair(call, name, layout):
    """Both callers behind the profile's network: video both ways over the pair it allows."""
    profile = PROFILES[name]
    c = call(layout, (profile.kind, profile.kind), proxy_credentials=profile.proxy_credentials)
    c.join()
    c.expect_media_both_ways("call did not connect")
    c.wait_for_pairs(profile.expected)
    # The app's own telemetry agrees on the kind of path (direct / relay).
    for person in ("alice", "bob"):
        connected = [r["data"] for r in c.reports(person) if r["data"].get("outcome") == "connected"]
        assert connected and connected[-1]["path"] == profile.path, c.reports(person)
        # ... and these networks need no escalation: the first attempt connected.
        assert connected[-1]["rung"] == "initial", c.reports(person)
    assert_no_candidate_addresses(c)
    if profile.kind == "proxy":
        assert_relayed_through_the_proxy(c, c.net.layout.turn443_name, profile.proxy_credentials)


def tcp_turn_ports(layout) -> set[int]:
    """The ports of the layout's TURN URLs over TCP or TLS."""
    return {int(m.group(1)) for url in layout.turn_urls
            if (m := re.match(r"turns?:[^:]+:(\d+)\?transport=tcp$", url))}


def assert_relayed_through_the_proxy(c: CallUnderTest, turn443_name: str, credentials) -> None:
    """squid tunnelled TURN over TLS to 443 by name, and refused CONNECT to TURN's other ports.

    squid logs a tunnel when it closes, so the people hang up first. (The page's own tunnel
    may stay open in Chromium's connection pool; that the page loaded at all proves it: the
    router forwards nothing.)"""
    for person in c.people:
        person.close()
    for caller in c.net.callers:
        wanted = f"TCP_TUNNEL/200 CONNECT {turn443_name}:443"
        try:
            wait_for(lambda: wanted in caller.proxy.tunnels(), 10, f"{wanted} in squid's log")
        except TimeoutError:
            pytest.fail(c.explain(f"{caller.label}: no {wanted}"))
        tunnels = caller.proxy.tunnels()
        # TURN over TCP to any other port (3478, 5349) is refused: TCP_DENIED/403, or
        # TCP_DENIED_ABORTED/403 when the browser gave up first. (The one-port layout offers
        # no other TCP port.)
        other_ports = tuple(f":{p}" for p in tcp_turn_ports(c.net.layout) if p != 443)
        refused = {t for t in tunnels if other_ports and t.endswith(other_ports)}
        assert bool(refused) == bool(other_ports), tunnels
        assert all(re.match(r"TCP_DENIED\S*/403 ", t) for t in refused), tunnels
        if credentials is not None:
            # The proxy did ask (407), and the TURN tunnel went through as that user.
            assert any(t.startswith("TCP_DENIED/407") for t in tunnels), tunnels
            user = credentials[0]
            relayed = [t for t in caller.proxy.tunnels(with_user=True) if wanted in t]
            assert relayed and all(t.endswith(f" {user}") for t in relayed), relayed


def tile_status(person, other) -> str:
    """What ``person`` reads on ``other``'s tile (the status line over the video)."""
    return person.page.locator(f'.tile[data-peer="{other.id}"] .tile-status').inner_text()


def test_stun_only_behind_symmetric_nat_never_connects_and_the_app_says_so(call):
    """The negative control: without TURN, two symmetric NATs leave no path. The call never
    reports connected nor passes media, and within ``GIVES_UP_S`` seconds of joining (ICE
    restart at 10 s, no turns: URL for a relay rung) each person reads on the other's tile
    that the call cannot connect; each app reports the failure."""
    c = call("second-address", ("symmetric-nat", "symmetric-nat"), stun_only=True)
    c.join()
    joined = time.monotonic()
    c.alice.wait("() => window.rtcsvc.state.peers.length === 1", what="Bob in Alice's list")
    told = {}
    while len(told) < 2:
        elapsed = time.monotonic() - joined
        assert elapsed < GIVES_UP_S + SLACK_S, c.explain(f"nobody was told within {elapsed:.0f} s")
        for name, entries in c.pairs().items():
            for entry in entries:
                assert entry["connection"] != "connected", c.explain(f"{name} connected")
                assert entry["pair"] is None or not entry["pair"]["bytesReceived"], \
                    c.explain(f"{name} received media")
        for person, other in ((c.alice, c.bob), (c.bob, c.alice)):
            # (The other's name travels over the data channel, which never opened: the tile
            # names a guest.)
            if person.name not in told and tile_status(person, other).startswith(
                    "Can't connect to "):
                told[person.name] = elapsed
        time.sleep(0.5)
    # Not before the ladder ran: ICE restart at 10 s, given up at 20 s.
    assert min(told.values()) >= GIVES_UP_S - 2, told
    for person in c.people:
        assert all(p["connectionState"] != "connected" for p in person.state["peers"])
        expect(person.page.get_by_text(re.compile("^Can't connect to "))).to_be_visible()
    for label in ("alice", "bob"):
        failed = [r["data"] for r in c.reports(label) if r["data"]["outcome"] == "failed"]
        assert failed and failed[-1]["reason"] == "timeout", c.reports(label)
    assert_no_candidate_addresses(c)


# The relay protocols gathered, once every turns: URL has failed or gathering completed
# (Chromium may hold "gathering" for a failed TLS relay long past 30 s on a loaded machine).
LOCAL_RELAY_PROTOCOLS = """
async () => {
  const out = [];
  const tlsFailed = (window.__netmatrixIceErrors || []).some((e) => e.startsWith("turns:"));
  for (const pc of window.__netmatrixPCs || []) {
    if (pc.iceGatheringState !== "complete" && !tlsFailed) return null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "local-candidate" && s.candidateType === "relay") out.push(s.relayProtocol);
    });
  }
  return out;
}
"""


def test_turn_over_tls_needs_the_full_chain(call):
    """coturn serving its leaf certificate without the intermediate: Chromium, which trusts
    only the root and fetches nothing, gathers no TLS relay, so a 443-only caller has no path
    (docs/networks.md, certificates). The rest (UDP, TCP relays) is gathered as usual."""
    c = call("second-address", ("udp-blocked", "udp-blocked"), coturn_full_chain=False)
    c.join()
    c.alice.wait("() => window.rtcsvc.state.peers.length === 1", what="Bob in Alice's list")
    for person in c.people:
        person.wait(LOCAL_RELAY_PROTOCOLS, what="ICE gathering complete or turns: failed")
        # The TCP relay may come after the TLS failure: wait for it, then look again.
        protocols = person.wait(f"async () => {{ const p = await ({LOCAL_RELAY_PROTOCOLS})(); "
                                f"return p && p.includes('tcp') ? p : null; }}",
                                what="a TCP relay candidate")
        assert "tls" not in protocols, c.explain(f"{person.name}: {protocols}")
        errors = person.page.evaluate("window.__netmatrixIceErrors")
        assert any(e.startswith("turns:") for e in errors), errors


# ---- the one-port layout's server side, without browsers -----------------------------------------

# A Binding request over TLS to host:443 with no ALPN (as Chromium's TURN client), checking the
# certificate against the test root; prints the XOR-MAPPED-ADDRESS coturn answers with.
STUN_OVER_TLS = """
import os, socket, ssl, struct, sys
address, name, cafile = sys.argv[1:4]
context = ssl.create_default_context(cafile=cafile)
request = struct.pack("!HHI12s", 1, 0, 0x2112A442, os.urandom(12))
with socket.create_connection((address, 443), timeout=5) as raw:
    with context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(request)
        reply = b""
        while len(reply) < 20 or len(reply) < 20 + struct.unpack("!H", reply[2:4])[0]:
            chunk = tls.recv(4096)
            if not chunk:
                sys.exit("closed before a full answer")
            reply += chunk
assert reply[8:20] == request[8:20], "not our transaction"
body, at = reply[20:], 0
while at + 4 <= len(body):
    kind, length = struct.unpack("!HH", body[at:at + 4])
    if kind == 0x0020:  # XOR-MAPPED-ADDRESS, IPv4
        packed = bytes(a ^ b for a, b in zip(body[at + 8:at + 12], bytes.fromhex("2112A442")))
        print(socket.inet_ntoa(packed))
        sys.exit(0)
    at += 4 + (length + 3) // 4 * 4
sys.exit("no XOR-MAPPED-ADDRESS")
"""

TCP_CONNECTS = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
"""


def test_one_port_coturn_takes_tcp_only_through_rtcsvc(topology):
    """The one-port layout's server side as shipped (turnserver.conf + turnserver-one-port.conf,
    its nft lines run as written): coturn listens on TCP only at its proxy port, which nobody
    outside the host reaches; STUN over TLS to the site's own name and port 443 is answered by
    coturn through rtcsvc, with the caller's own address (the PROXY header's)."""
    net = CallNetwork(topology, LAYOUTS["one-port"]())
    proxy_port = net.layout.coturn_tls_port
    listening = net.server.run("ss", "-Hlntp").stdout.splitlines()
    coturn_tcp = {line.split()[3].rsplit(":", 1)[1] for line in listening if "turnserver" in line}
    assert coturn_tcp == {str(proxy_port)}, listening
    assert net.server.run(sys.executable, "-c", TCP_CONNECTS, "127.0.0.1", str(proxy_port),
                          check=False).returncode == 0
    assert net.pub.run(sys.executable, "-c", TCP_CONNECTS, SERVER_ADDRESS, str(proxy_port),
                       check=False).returncode == 1, "coturn's proxy port is reachable from outside"
    answer = net.pub.run(sys.executable, "-c", STUN_OVER_TLS, SERVER_ADDRESS, SITE_NAME,
                         str(net.ca.ca_pem))
    assert answer.stdout.strip() == PUBLIC_GATEWAY, answer


# ---- the escalation ladder: only the relay-only TLS rung gets through ------------------------------

@pytest.mark.parametrize("layout", tuple(LAYOUTS))
def test_a_path_that_loses_large_udp_datagrams_connects_on_the_relay_only_rung(call, layout):
    """Both callers' routers drop UDP datagrams of ``BLACKHOLE_MIN_BYTES`` and more: ICE checks
    pass over UDP, the DTLS handshake never does, and an ICE restart picks UDP again (the
    connection stays "connecting" for good: checked by hand for 60 s). The app's ladder
    rebuilds both ends relay-only over TURN/TLS: each person reads "Trying a relay…" on the
    other's tile, then the call connects over a TLS relay from the layout's turns: URL on 443,
    video flows both ways, and the setup reports say the relay-only rung connected it."""
    c = call(layout, ("udp-large-blackhole", "udp-large-blackhole"))
    c.join()
    joined = time.monotonic()
    # Polled, not expect(): the relay may connect within a second and the notice go.
    notices = {person.name: person.page.locator(f'.tile[data-peer="{other.id}"]').get_by_text(
        "Trying a relay…") for person, other in ((c.alice, c.bob), (c.bob, c.alice))}
    seen = {}
    while len(seen) < 2:
        assert time.monotonic() < joined + RELAY_RUNG_S + SLACK_S, \
            c.explain(f"'Trying a relay…' seen only by {sorted(seen)}")
        for name, notice in notices.items():
            if name not in seen and notice.is_visible():
                seen[name] = time.monotonic() - joined
        time.sleep(0.1)
    assert min(seen.values()) >= RELAY_RUNG_S - 2, seen  # not before the ICE restart's turn
    c.expect_media_both_ways("the relay-only rung did not connect")
    c.wait_for_pairs(relay_over_tls_on_443)
    for person, other in ((c.alice, c.bob), (c.bob, c.alice)):
        assert tile_status(person, other) == ""  # the notice went with the problem
    for label in ("alice", "bob"):
        connected = [r["data"] for r in c.reports(label) if r["data"]["outcome"] == "connected"]
        assert connected and connected[-1]["rung"] == "relay-only", c.reports(label)
        assert connected[-1]["path"] == "relay", c.reports(label)
        # setupMs counts from the first attempt: the person waited through the whole ladder.
        assert connected[-1]["setupMs"] >= (RELAY_RUNG_S - 2) * 1000, c.reports(label)
    assert_no_candidate_addresses(c)
