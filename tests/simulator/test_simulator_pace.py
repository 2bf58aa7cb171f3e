"""How a server's record of arrivals is judged: requests, refusals, and when the sending rate settled."""

from crawler.simulator.pace import Arrivals, settled_at


def test_a_steady_stream_is_settled_from_its_first_request() -> None:
    assert settled_at([i * 0.5 for i in range(40)], target=2.0) == 0


def test_a_stream_settles_where_it_stays_within_the_tolerance_to_the_end() -> None:
    fast = [i * 0.25 for i in range(20)]  # 4 requests/s, then 2/s from 5.0 s on
    slow = [5.0 + i * 0.5 for i in range(40)]
    assert settled_at(fast + slow, target=2.0) == 19  # 4.75 s to 9.5 s: 10 requests at 2.1/s, within 10%
    assert settled_at(fast + slow, target=4.0) == 60  # outside over the last span: never


def test_arrivals_count_requests_and_refusals() -> None:
    arrivals = Arrivals([(0.0, True), (0.1, False), (0.2, True)])
    assert (arrivals.requests, arrivals.throttled) == (3, 1)
    assert Arrivals().settled_at(2.0) == 0  # no requests: nothing to be outside of
