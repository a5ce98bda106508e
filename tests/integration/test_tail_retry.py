"""cbevents-tail: every fault SPEC section 1 calls transient is retried at
the same cursor, Retry-After (seconds and HTTP date) is honoured, a null or
absent nextUrl keeps the cursor, and across all of it no event is lost or
printed twice."""

import signal

import cbtest

TOKEN = "retryTok3n-0123456789abcdef"

# Each is followed by a good answer (the retry), so the backoff restarts at
# its first step every time. min_gap: seconds the retry must wait at least.
FAULTS = [
    ({"status": 429, "retry_after": "2"}, 1.9),
    ({"status": 429, "retry_after": {"date_in": 3}}, 1.5),  # HTTP date, 1 s grain
    ({"status": 500}, 0.45), ({"status": 502}, 0.45), ({"status": 503}, 0.45),
    ({"status": 504}, 0.45), ({"status": 520}, 0.45), ({"status": 521}, 0.45),
    ({"status": 522}, 0.45), ({"status": 523}, 0.45), ({"status": 524}, 0.45),
    # A reset on a fresh connection reaches the client's retry logic; one on
    # a reused keep-alive connection is re-sent at once by libcurl itself
    # (a stale-connection retry), so only the URL is checked there.
    ({"reset": True, "fresh": True}, 0.45),
    ({"reset": True, "reused": True}, 0.0),
    ({"truncate": True}, 0.45),
    ({"garbage": True}, 0.45),
    ({"huge": 9 * 1024 * 1024}, 0.45),
]


def _name(f):
    return ",".join("%s=%s" % kv for kv in sorted(f.items()))


def test_faults_retried_at_same_cursor():
    api = cbtest.fake_api({"alice": TOKEN}, batch_size=2, max_wait=0.5)
    ids = api.generate("alice", 50)
    queue = []
    for fault, _ in FAULTS:
        if fault.get("fresh") and queue:
            queue[-1] = {"pass": True, "close": True}
        queue += [fault, {"pass": True}]
    # Good answers whose nextUrl is null or missing: the cursor must stay.
    queue += [{"null_next_url": True}, {"pass": True}, {"omit_next_url": True}]
    api.add_faults("alice", queue)

    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--retries", "8",
                              "alice"], token=TOKEN)
    try:
        tail.wait_stdout_lines(len(ids), timeout=50)
    except AssertionError:
        raise AssertionError("events missing\n" + tail.describe())
    cbtest.wait_until(lambda: len(api.event_requests()) > len(queue) + 2, 10,
                      what="the tool to go on polling")
    rc = tail.stop(signal.SIGTERM)
    assert rc == 0, "exit %s\n%s" % (rc, tail.describe())

    got = [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())]
    assert got == ids, "lost or duplicated events: %d printed of %d; dups=%r" % (
        len(got), len(ids), sorted({i for i in got if got.count(i) > 1}))

    reqs = api.event_requests("alice")
    min_gap = {_name(f): g for f, g in FAULTS}
    checked = 0
    for cur, nxt in zip(reqs, reqs[1:]):
        f = cur["fault"]
        if not f or f.get("pass"):
            continue
        if "null_next_url" in f or "omit_next_url" in f:
            assert nxt["i"] == cur["i"], "after a %s answer the cursor moved: i=%s -> %s" % (
                _name(f), cur["i"], nxt["i"])
            checked += 1
            continue
        assert (nxt["path"], nxt["raw_query"]) == (cur["path"], cur["raw_query"]), \
            "fault %s: retried %s?%s, failed one was %s?%s" % (
                _name(f), nxt["path"], nxt["raw_query"], cur["path"], cur["raw_query"])
        if f.get("fresh"):
            assert cur["conn_seq"] == 0, "the fresh-connection reset came on a reused one"
        if f.get("reused"):
            assert cur["conn_seq"] > 0, "the reused-connection reset came on a fresh one"
        gap = nxt["mono"] - cur["mono"]
        assert gap >= min_gap[_name(f)], "fault %s retried after %.2f s (< %.2f s)" % (
            _name(f), gap, min_gap[_name(f)])
        assert gap < 8.0, "fault %s: retry took %.2f s" % (_name(f), gap)
        checked += 1
    assert checked == len(FAULTS) + 2, "only %d of %d faults were seen" % (
        checked, len(FAULTS) + 2)


if __name__ == "__main__":
    cbtest.run([test_faults_retried_at_same_cursor])
