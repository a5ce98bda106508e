"""cbevents-tail refuses a nextUrl that leaves the configured origin (SPEC
section 2): another port, another host name, another scheme, userinfo, or a
redirect. Nothing reaches the other place (a listener records every
connection), the tool exits 1, and the events before it were printed."""

import urllib.parse

import cbtest

TOKEN = "hostileTok-0f1e2d3c4b5a"


def _run_hostile(make_fault, in_empty_answer=False):
    """First answer: 5 good events. Second answer: a fault made by
    make_fault(api, recorder, last_id) -- with 3 more events, or, when
    in_empty_answer, as the 400 "waited too long" answer."""
    rec = cbtest.ConnectionRecorder()
    api = cbtest.fake_api({"alice": TOKEN}, batch_size=5, max_wait=0.3)
    ids = api.generate("alice", 5 if in_empty_answer else 8)
    fault = make_fault(api, rec, ids[4])
    api.add_faults("alice", [{"pass": True}, fault])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--log-level", "debug",
                              "alice"], token=TOKEN)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1 for a refused nextUrl %r\n%s" % (
        rc, fault, tail.describe())
    got = [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())]
    # The 5 events of the good answer are out; those of the answer carrying
    # the hostile nextUrl may or may not be (the cursor stays before them),
    # but nothing twice and nothing out of order.
    assert got[:5] == ids[:5], "events before the refusal missing: %r" % got
    assert got == ids[:len(got)], "unexpected output %r" % got
    reqs = api.event_requests()
    assert len(reqs) == 2, "%d requests reached the API, want 2 (refused URL followed?)" % len(
        reqs)
    assert all(r["headers"].get("Host") == "127.0.0.1:%d" % api.port for r in reqs), \
        [r["headers"].get("Host") for r in reqs]
    assert rec.connections == [], "the hostile place got connections: %r" % rec.connections
    cbtest.assert_no_secret(tail.stderr_text(), TOKEN, "stderr")
    return tail


def _url(scheme, hostport, last_id):
    return "%s://%s/events/alice/%s/?i=%s&timeout=1" % (
        scheme, hostport, urllib.parse.quote(TOKEN, safe=""), last_id)


def test_other_port_on_loopback():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "127.0.0.1:%d" % rec.port, last)})


def test_other_port_in_waited_too_long_answer():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "127.0.0.1:%d" % rec.port, last)}, in_empty_answer=True)


def test_other_host_name_same_port():
    # localhost is loopback too, but not the configured host.
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "localhost:%d" % api.port, last)})


def test_foreign_host():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "evil.example:%d" % rec.port, last)})


def test_other_scheme():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("https", "127.0.0.1:%d" % api.port, last)})


def test_userinfo():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "mallory@127.0.0.1:%d" % api.port, last)})


def test_ip_literal_for_the_same_machine():
    # An IPv4-mapped IPv6 literal of 127.0.0.1: the same machine, another host.
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "[::ffff:127.0.0.1]:%d" % rec.port, last)})


def test_percent_encoded_host():
    # "localhost", percent-encoded: decoded, it is not the configured host.
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "%%6c%%6f%%63%%61%%6c%%68%%6f%%73%%74:%d" % api.port, last)})


def test_userinfo_hiding_the_host():
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "127.0.0.1:%d@127.0.0.1:%d" % (api.port, rec.port), last)})


def test_very_long_next_url():
    # Over the 8 KiB cap, on the right origin: refused all the same.
    _run_hostile(lambda api, rec, last: {
        "next_url": _url("http", "127.0.0.1:%d" % api.port, last) + "&pad=" + "x" * 9000})


def test_redirect_not_followed():
    rec = cbtest.ConnectionRecorder()
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    ids = api.generate("alice", 2)
    api.add_faults("alice", [{"pass": True}, {"redirect": _url("http", "127.0.0.1:%d" % rec.port,
                                                               ids[-1])}])
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"], token=TOKEN)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1 on a redirect\n%s" % (rc, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    assert len(api.event_requests()) == 2
    assert rec.connections == [], "the redirect was followed: %r" % rec.connections
    cbtest.assert_no_secret(tail.stderr_text(), TOKEN, "stderr")


if __name__ == "__main__":
    cbtest.run([test_other_port_on_loopback, test_other_port_in_waited_too_long_answer,
                test_other_host_name_same_port, test_foreign_host, test_other_scheme,
                test_userinfo, test_ip_literal_for_the_same_machine, test_percent_encoded_host,
                test_userinfo_hiding_the_host, test_very_long_next_url,
                test_redirect_not_followed])
