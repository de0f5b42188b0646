from hypothesis import given
from hypothesis import strategies as st

from rtcsvc.ratelimit import ClientBuckets, TokenBucket


def test_a_full_bucket_lets_a_burst_through_then_refuses():
    bucket = TokenBucket(rate=50, burst=300, now=0.0)
    assert all(bucket.take(0.0) for _ in range(300))
    assert not bucket.take(0.0)


def test_tokens_come_back_at_the_configured_rate_up_to_the_burst():
    bucket = TokenBucket(rate=50, burst=300, now=0.0)
    for _ in range(300):
        bucket.take(0.0)
    assert [bucket.take(0.1) for _ in range(6)] == [True] * 5 + [False]
    assert sum(bucket.take(1000.0) for _ in range(400)) == 300


@given(st.lists(st.floats(0, 0.5), max_size=400))
def test_no_more_pass_than_burst_plus_rate_times_elapsed(gaps):
    bucket = TokenBucket(rate=50, burst=30, now=0.0)
    now, passed = 0.0, 0
    for gap in gaps:
        now += gap
        passed += bucket.take(now)
    assert passed <= 30 + 50 * now + 1e-9


def test_each_client_has_its_own_bucket_and_a_drained_one_waits_for_the_rate():
    buckets = ClientBuckets(rate=1, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("b", 0.0)
    buckets.drain("b", 0.0)
    assert not buckets.take("b", 0.5) and buckets.take("b", 1.6)


def test_full_buckets_are_forgotten_so_the_table_stays_bounded():
    buckets = ClientBuckets(rate=1, burst=2)
    for second in range(50):
        for n in range(ClientBuckets.MIN_SWEEP):
            buckets.take(f"{second}-{n}", float(second * 10))
    # Every bucket refills in 2 s; each sweep keeps only those of the last round.
    assert len(buckets) <= 2 * ClientBuckets.MIN_SWEEP
