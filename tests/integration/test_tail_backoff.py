"""cbevents-tail: the backoff schedule (1 s doubling, jittered into
[d/2, d]), --retries N as attempts per request then exit 1, errors that are
not retried (another 400, 404), and an answer slower than the client's own
transfer timeout (long-poll + 10 s) retried at the same cursor."""

import signal
import time

import cbtest

TOKEN = "backoffTok-9f8e7d6c5b4a"


def test_backoff_doubles_with_jitter():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    ids = api.generate("alice", 1)
    api.add_faults("alice", [{"status": 503}] * 3)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--retries", "0",
                              "alice"], token=TOKEN)
    tail.wait_stdout_lines(1, timeout=15)
    assert tail.stop(signal.SIGTERM) == 0, tail.describe()
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    reqs = api.event_requests()
    assert len(reqs) >= 4 and all(r["i"] is None for r in reqs[:4]), reqs[:4]
    gaps = [b["mono"] - a["mono"] for a, b in zip(reqs[:4], reqs[1:4])]
    # Retry k waits d = 2^(k-1) s jittered into [d/2, d]; allow scheduling
    # slack above, none below.
    for k, gap in enumerate(gaps, 1):
        d = 2.0 ** (k - 1)
        assert d / 2 - 0.02 <= gap <= d + 0.6, "retry %d after %.2f s, want [%.1f, %.1f]: %r" % (
            k, gap, d / 2, d, gaps)


def test_retries_exhausted_exit_1():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    api.generate("alice", 3)
    api.add_faults("alice", [{"status": 500}] * 10)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--retries", "3",
                              "alice"], token=TOKEN)
    rc = tail.wait(15)
    assert rc == 1, "exit %s, want 1\n%s" % (rc, tail.describe())
    reqs = api.event_requests()
    assert len(reqs) == 3, "%d requests for --retries 3" % len(reqs)
    assert len({(r["path"], r["raw_query"]) for r in reqs}) == 1, "the URL changed"
    assert tail.stdout_text() == "", "printed events it never got"


def test_other_400_not_retried():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    ids = api.generate("alice", 2)
    api.add_faults("alice", [{"pass": True}, {"status": 400, "text": "Invalid i parameter"}])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"], token=TOKEN)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1\n%s" % (rc, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    assert len(api.event_requests()) == 2, "a 400 was retried"


def test_unknown_broadcaster_404_exit_1():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "nobody"], token=TOKEN)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1\n%s" % (rc, tail.describe())
    assert len(api.event_requests()) == 1, "a 404 was retried"


def test_slow_answer_beyond_client_timeout():
    # --timeout 0: the client's transfer timeout is 0 + 10 s; the fake
    # answers after 11 s, so the client must give up, and retry the cursor.
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.2)
    ids = api.generate("alice", 2)
    api.add_faults("alice", [{"slow": 11.5}])
    t0 = time.monotonic()
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "0", "alice"], token=TOKEN)
    tail.wait_stdout_lines(2, timeout=20)
    took = time.monotonic() - t0
    assert tail.stop(signal.SIGTERM) == 0, tail.describe()
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    reqs = api.event_requests()
    assert reqs[1]["raw_query"] == reqs[0]["raw_query"], "retry moved the cursor"
    gap = reqs[1]["mono"] - reqs[0]["mono"]
    assert 9.5 <= gap <= 11.5 + 1.5, "timed out after %.1f s, want about 10 s" % gap
    assert took < 15, took


if __name__ == "__main__":
    cbtest.run([test_backoff_doubles_with_jitter, test_retries_exhausted_exit_1,
                test_other_400_not_retried, test_unknown_broadcaster_404_exit_1,
                test_slow_answer_beyond_client_timeout])
