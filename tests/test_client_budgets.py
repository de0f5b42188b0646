"""What one client may take: TURN credentials (short-lived, metered) and call-setup reports.

Every anonymous join used to get a credential valid for a day; about a hundred joins used up
coturn's total quota. Now a credential lives two hours by default (live sockets get fresh ones),
and each client address gets at most ``--turn-mint-rate`` new ones per hour.
"""

from rtcsvc.turn import DEFAULT_TTL, IceConfig, TurnMinter
from tests.support.memws import MemoryServer

SECRET = b"s" * 32


def turn_entries(welcome) -> list[dict]:
    return [e for e in welcome["iceServers"] if any(u.startswith("turn") for u in e["urls"])]


def test_credentials_live_two_hours_by_default():
    assert DEFAULT_TTL <= 2 * 3600
    [entry] = IceConfig((), ("turn:t.example:3478",), SECRET).ice_servers("p", now=1000)[-1:]
    assert int(entry["username"].split(":")[0]) == 1000 + DEFAULT_TTL


def test_a_client_gets_its_burst_then_one_per_refill_interval():
    minter = TurnMinter(per_hour=3)
    assert [minter.may_mint("198.51.100.7", 0) for _ in range(4)] == [True, True, True, False]
    assert minter.may_mint("198.51.100.8", 0)  # another client has its own budget
    assert minter.may_mint("198.51.100.7", 1200)  # 3 per hour: one every 20 minutes


def test_a_zero_rate_means_no_limit():
    minter = TurnMinter(per_hour=0)
    assert all(minter.may_mint("198.51.100.7", 0) for _ in range(1000))


def server(per_hour):
    return MemoryServer(ice=IceConfig(("stun:t.example:3478",), ("turn:t.example:3478",),
                                      SECRET, 600),
                        turn_minter=TurnMinter(per_hour), rate=0, handshake_rate=0)


def test_joins_past_the_budget_are_welcomed_with_stun_only_and_counted():
    srv = server(per_hour=2)
    welcomes = [srv.join(f"room{i}", address="198.51.100.7")[1] for i in range(3)]
    assert [len(turn_entries(w)) for w in welcomes] == [1, 1, 0]
    assert welcomes[2]["iceServers"] == [{"urls": ["stun:t.example:3478"]}]
    assert srv.metrics.registry.get_sample_value("rtcsvc_turn_mints_refused_total") == 1
    _, other = srv.join("room9", address="198.51.100.8")
    assert len(turn_entries(other)) == 1


def test_a_live_socket_still_gets_fresh_credentials_before_they_expire():
    srv = server(per_hour=1)
    client, welcome = srv.join("room", address="198.51.100.7")
    first = turn_entries(welcome)[0]["username"]
    srv.clock.advance(600 * 0.8 + 1)
    [refresh] = [m for m in client.new_messages() if m["type"] == "ice-servers"]
    [entry] = turn_entries(refresh)
    assert entry["username"] != first


# ---- call-setup reports are counted per client, however many sockets it opens ----

from rtcsvc.protocol import MAX_REPORTS, REPORTS_PER_CLIENT_BURST  # noqa: E402


def counted_setups(srv) -> float:
    return srv.metrics.registry.get_sample_value("rtcsvc_call_setups_total",
                                                 {"path": "direct"}) or 0


def test_one_client_cannot_fill_the_metrics_with_fake_reports_through_many_sockets():
    srv = MemoryServer(rate=0, handshake_rate=0)
    report = {"type": "report", "data": {"outcome": "connected", "setupMs": 5, "path": "direct"}}
    sockets = REPORTS_PER_CLIENT_BURST // MAX_REPORTS + 3
    for i in range(sockets):
        client, _ = srv.join(f"room{i}", address="198.51.100.7")
        for _ in range(MAX_REPORTS):
            client.send_json(report)
    assert counted_setups(srv) == REPORTS_PER_CLIENT_BURST
    honest, _ = srv.join("elsewhere", address="198.51.100.8")
    honest.send_json(report)
    assert counted_setups(srv) == REPORTS_PER_CLIENT_BURST + 1
