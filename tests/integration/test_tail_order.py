"""cbevents-tail against the fake API: order and exactly-once over several
batches, the SPEC section 3 form of every event type, the cursor the tool
asks for, and the three token sources (CB_TOKEN, CB_TOKEN_FILE,
CB_EVENTS_URL)."""

import os
import random
import signal
import time

import cbtest

TOKEN = "Zx9kLm2Qw8Rt5Yu1Io3Pa7Sd4Fg6Hj0K"


def _collect(api, tail, ids, timeout=30.0):
    """Waits until tail printed len(ids) lines, stops it, returns the parsed
    lines. The tool must exit 0 on SIGTERM (and ASan must be happy)."""
    try:
        tail.wait_stdout_lines(len(ids), timeout)
    except AssertionError:
        raise AssertionError("not all events printed\n" + tail.describe())
    # A little longer: anything extra (a duplicate) would show up now.
    time.sleep(0.5)
    rc = tail.stop(signal.SIGTERM, timeout=5)
    assert rc == 0, "exit %s after SIGTERM\n%s" % (rc, tail.describe())
    return cbtest.json_lines(tail.stdout_text())


def test_order_exactly_once_over_batches():
    api = cbtest.fake_api({"alice": TOKEN}, batch_size=100, max_wait=0.5)
    ids = api.generate("alice", 350)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "5", "alice"], token=TOKEN)
    lines = _collect(api, tail, ids)
    got = [ln["id"] for ln in lines]
    assert got == ids, "printed ids differ from produced ids: %d printed, %d produced, " \
        "first difference at %s" % (len(got), len(ids),
                                     next((i for i, (a, b) in enumerate(zip(got, ids))
                                           if a != b), min(len(got), len(ids))))
    by_id = {e["id"]: e for e in api.events("alice")}
    for ln in lines:
        cbtest.assert_normalized(ln, by_id[ln["id"]])

    # The requests: the first without a cursor, each next one at the last id
    # of the batch before (4 batches: 100, 100, 100, 50), then long-polls at
    # the last id. Every request carries the token and the timeout.
    reqs = api.event_requests("alice")
    assert len(reqs) >= 4, reqs
    assert reqs[0]["i"] is None, "first request has a cursor: %r" % reqs[0]["raw_query"]
    served = [r.get("served") for r in reqs[:4]]
    assert [len(s or []) for s in served] == [100, 100, 100, 50], [len(s or []) for s in served]
    for prev, cur in zip(reqs, reqs[1:]):
        want_i = prev["served"][-1] if prev.get("served") else prev["i"]
        assert cur["i"] == want_i, "request %d asked i=%s, expected %s" % (
            cur["seq"], cur["i"], want_i)
    for r in reqs:
        assert r["token"] == TOKEN and r["query"].get("timeout") == "5", r
        assert r["headers"].get("User-Agent", "").startswith("cbevents/"), r["headers"]


def test_all_event_types_normalized():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    ids = api.generate("alice", 36)  # every method three times
    # Quirks of SPEC section 1 made certain: an anonymous tip, tips with
    # and without a note, a media id as a number and as a string.
    rng = random.Random(7)
    mk = cbtest.fake_api_module().make_object
    extra = [
        {"method": "tip", "object": mk(rng, "tip", "alice", "bob", tokens=25,
                                       text="hi", anon=False)},
        {"method": "tip", "object": mk(rng, "tip", "alice", "carol", tokens=1,
                                       text="", anon=True)},
        {"method": "mediaPurchase", "object": mk(rng, "mediaPurchase", "alice", "dave",
                                                 media_id=42)},
        {"method": "mediaPurchase", "object": mk(rng, "mediaPurchase", "alice", "erin",
                                                 media_id="77")},
    ]
    ids += api.add_events("alice", extra)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "5", "alice"], token=TOKEN)
    lines = _collect(api, tail, ids)
    assert [ln["id"] for ln in lines] == ids
    events = api.events("alice")
    for ln, ev in zip(lines, events):
        cbtest.assert_normalized(ln, ev)
    assert {ln["event_type"] for ln in lines} == set(cbtest.EVENT_TYPES.values())
    anon = lines[-3]
    assert anon["user"] is None and anon["tip"]["is_anon"] is True, anon
    assert lines[-2]["media"]["id"] == "42" and lines[-1]["media"]["id"] == "77"


def test_token_file_and_events_url():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    ids = api.generate("alice", 5)
    d = cbtest.tempdir()
    token_file = os.path.join(d, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")  # the newline an editor leaves is not part of it
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "2", "alice"],
                             token_file=token_file)
    assert [ln["id"] for ln in _collect(api, tail, ids)] == ids
    assert all(r["token"] == TOKEN for r in api.event_requests()), "token file not used"

    # The whole feed URL: no USERNAME needed.
    api.reset()
    ids = api.generate("alice", 5)
    tail = cbtest.start_tail(["--timeout", "2"], events_url=api.feed_url("alice", timeout=2))
    assert [ln["id"] for ln in _collect(api, tail, ids)] == ids
    reqs = api.event_requests()
    assert reqs and all(r["token"] == TOKEN and r["broadcaster"] == "alice" for r in reqs)


if __name__ == "__main__":
    cbtest.run([test_order_exactly_once_over_batches, test_all_event_types_normalized,
                test_token_file_and_events_url])
