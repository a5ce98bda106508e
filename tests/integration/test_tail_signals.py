"""cbevents-tail stops promptly and cleanly (exit 0, < 2 s) on SIGTERM and
SIGINT, whether it is inside a long-poll or waiting out a Retry-After, and
what it printed before was flushed line by line."""

import signal
import time

import cbtest

TOKEN = "signalTok-55aa55aa55aa"


def _stop_within(tail, sig, limit=2.0):
    t0 = time.monotonic()
    tail.send_signal(sig)
    try:
        rc = tail.wait(10)
    except TimeoutError:
        raise AssertionError("still running 10 s after signal %d\n%s" % (sig, tail.describe()))
    took = time.monotonic() - t0
    assert rc == 0, "exit %s after signal %d\n%s" % (rc, sig, tail.describe())
    assert took < limit, "took %.2f s to stop (limit %.1f s)" % (took, limit)
    return took


def _long_poll_case(sig):
    api = cbtest.fake_api({"alice": TOKEN})  # holds a poll the full timeout
    ids = api.generate("alice", 2)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "30", "alice"], token=TOKEN)
    # Lines show up while the tool sits in the next poll: flushed per line.
    tail.wait_stdout_lines(2, timeout=10)
    api.wait_for_requests(2)
    time.sleep(0.3)  # well inside the 30 s hold
    assert tail.alive()
    _stop_within(tail, sig)
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    assert len(api.event_requests()) == 2


def test_sigterm_during_long_poll():
    _long_poll_case(signal.SIGTERM)


def test_sigint_during_long_poll():
    _long_poll_case(signal.SIGINT)


def test_sigterm_during_retry_after_wait():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    api.add_faults("alice", [{"status": 503, "retry_after": "30"}])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"], token=TOKEN)
    api.wait_for_requests(1)
    time.sleep(0.5)
    assert tail.alive()
    _stop_within(tail, signal.SIGTERM)
    assert len(api.event_requests()) == 1, "did not honour Retry-After: 30"


if __name__ == "__main__":
    cbtest.run([test_sigterm_during_long_poll, test_sigint_during_long_poll,
                test_sigterm_during_retry_after_wait])
