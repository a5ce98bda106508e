"""cbevents-tail never shows the token (SPEC section 2): with --log-level
debug and a token that needs percent-encoding ("s3cr3t/tok+en"), through
error bodies that echo the URL, a garbage body, a skipped item carrying the
token, Retry-After, a refused nextUrl and a 401, neither the raw nor any
percent-encoded form appears on stderr or stdout."""

import json
import signal
import urllib.parse

import cbtest

TOKEN = "s3cr3t/tok+en"
ENC = urllib.parse.quote(TOKEN, safe="")


def _check_output(tail, min_lines=3):
    err, out = tail.stderr_text(), tail.stdout_text()
    cbtest.assert_no_secret(err, TOKEN, "stderr")
    cbtest.assert_no_secret(out, TOKEN, "stdout")
    # Not vacuous: debug logging did talk about the requests.
    assert len(err.splitlines()) >= min_lines, "suspiciously quiet stderr:\n%s" % err


def test_token_masked_everywhere():
    rec = cbtest.ConnectionRecorder()
    api = cbtest.fake_api({"alice": TOKEN}, batch_size=3, max_wait=0.3)
    ids = api.generate("alice", 3)
    good_next = "%s?i=%s&timeout=1" % (api.feed_url("alice"), ids[-1])
    # A batch with items that are not events; one of them carries the token.
    odd_body = json.dumps({"events": [42, {"id": "1-0", "note": "token " + TOKEN},
                                      {"method": "tip", "note": ENC}],
                           "nextUrl": good_next})
    api.add_faults("alice", [
        {"pass": True},
        {"status": 500, "echo_url": True},
        {"garbage": True, "echo_url": True},
        {"status": 429, "retry_after": "1", "echo_url": True},
        {"body": odd_body},
        {"status": 400, "text": "bad cursor for " + TOKEN, "echo_url": True},
    ])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--log-level", "debug",
                              "alice"], token=TOKEN)
    rc = tail.wait(20)
    assert rc == 1, "exit %s, want 1 (the final 400)\n%s" % (rc, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    reqs = api.event_requests()
    assert len(reqs) == 6 and all(r["token"] == TOKEN for r in reqs), \
        "the fake did not see the token on every request: %r" % [r["token"] for r in reqs]
    _check_output(tail)

    # A refused nextUrl, logged with the URL it refused.
    api.reset()
    ids = api.generate("alice", 3)
    api.add_faults("alice", [{"next_url": "http://127.0.0.1:%d/events/alice/%s/?i=%s" % (
        rec.port, ENC, ids[-1])}])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--log-level", "debug",
                              "alice"], token=TOKEN)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1\n%s" % (rc, tail.describe())
    assert rec.connections == []
    _check_output(tail, min_lines=1)  # at least the refusal itself


def test_token_masked_with_events_url_and_401():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    ids = api.generate("alice", 2)
    tail = cbtest.start_tail(["--timeout", "1", "--log-level", "debug"],
                             events_url=api.feed_url("alice", timeout=1))
    tail.wait_stdout_lines(2, timeout=10)
    api.set_broadcaster("alice", "rotated")
    rc = tail.wait(10)
    assert rc == 3, "exit %s, want 3\n%s" % (rc, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    _check_output(tail)


def test_token_masked_on_sigterm_debug():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=5)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "5", "--log-level", "debug",
                              "alice"], token=TOKEN)
    api.wait_for_requests(1)
    assert tail.stop(signal.SIGTERM) == 0, tail.describe()
    cbtest.assert_no_secret(tail.stderr_text(), TOKEN, "stderr")


if __name__ == "__main__":
    cbtest.run([test_token_masked_everywhere, test_token_masked_with_events_url_and_401,
                test_token_masked_on_sigterm_debug])
