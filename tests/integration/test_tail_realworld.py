"""cbevents-tail on what real upstreams do (issue 11, SPEC sections 1-4):
a lone 401 or 403 is retried and the feed goes on; every wording of the
"waited too long" answer is the empty batch; a padded nextUrl is followed;
--raw keeps integers above 2^53 as their text (and the normalized form
keeps media.id's digits); an isAnon that is not JSON false hides the
tipper in both forms unless --expose-anonymous-tippers; a redirect is
logged by the origin it names (or as having no Location), never by its
path or the token."""

import signal

import cbtest

TOKEN = "realTok-9z8y7x6w5v4u"
BIG = 9007199254740993  # 2^53 + 1: a double rounds it to ...992


def _tail(api, *extra):
    return cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--log-level", "info"]
                             + list(extra) + ["alice"], token=TOKEN)


def _stop(tail):
    tail.send_signal(signal.SIGTERM)
    rc = tail.wait(10)
    assert rc == 0, "exit %s after SIGTERM\n%s" % (rc, tail.describe())
    cbtest.assert_no_secret(tail.stderr_text(), TOKEN, "stderr")


def _recovers_from(status):
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    ids = api.generate("alice", 3)
    api.add_faults("alice", [{"status": status}])
    tail = _tail(api)
    tail.wait_stdout_lines(3, timeout=15)
    assert tail.alive, "exited after one %d\n%s" % (status, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    reqs = api.event_requests()
    assert reqs[0]["status"] == status and reqs[1]["status"] == 200, reqs[:2]
    assert reqs[1]["i"] is None, "the retry must ask for the same cursor"
    assert "retrying in" in tail.stderr_text(), tail.describe()
    _stop(tail)


def test_recovers_from_one_401():
    _recovers_from(401)


def test_recovers_from_one_403():
    _recovers_from(403)


def test_two_refusals_then_good():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    ids = api.generate("alice", 2)
    api.add_faults("alice", [{"status": 401}, {"status": 403}])
    tail = _tail(api)
    tail.wait_stdout_lines(2, timeout=15)
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    _stop(tail)


def test_every_timeout_wording():
    wordings = ["waited too long for events", "WAITED TOO LONG", "Waited too long for events",
                "error: Waited Too Long (timeout=1)"]
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.2)
    api.add_faults("alice", [{"timeout_text": w} for w in wordings])
    tail = _tail(api)
    cbtest.wait_until(lambda: len(api.event_requests()) > len(wordings), timeout=15,
                      what="the requests after the timeout answers")
    assert tail.alive, "a timeout wording stopped it\n%s" % tail.describe()
    served = [r["status"] for r in api.event_requests()[:len(wordings)]]
    assert served == [400] * len(wordings), served
    ids = api.generate("alice", 2)
    tail.wait_stdout_lines(2, timeout=10)
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    _stop(tail)


def test_padded_next_url():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    ids = api.generate("alice", 2)
    api.add_faults("alice", [{"pad_next_url": " \t\r\n "}, {"pad_next_url": "  "}])
    tail = _tail(api)
    tail.wait_stdout_lines(2, timeout=10)
    more = api.generate("alice", 2)
    tail.wait_stdout_lines(4, timeout=10)
    assert tail.alive, tail.describe()
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids + more
    assert api.event_requests()[1]["i"] == ids[-1], "the padded nextUrl was not followed"
    _stop(tail)


def _big_events(api):
    return api.add_events("alice", [
        {"method": "mediaPurchase", "object": {
            "broadcaster": "alice", "user": {"username": "bob"},
            "media": {"id": BIG, "name": "set", "type": "photos", "tokens": BIG}}},
        {"method": "tip", "object": {
            "broadcaster": "alice", "user": {"username": "bob"},
            "tip": {"tokens": 9223372036854775807, "isAnon": False, "message": "| x"}}},
    ])


def test_raw_keeps_big_numbers():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    _big_events(api)
    tail = _tail(api, "--raw")
    tail.wait_stdout_lines(2, timeout=10)
    out = tail.stdout_text()
    assert '"id":%d,' % BIG in out and '"tokens":%d}' % BIG in out, out
    assert '"tokens":9223372036854775807,' in out, out
    assert "9007199254740992" not in out, "rounded: " + out
    lines = cbtest.json_lines(out)
    assert lines[0]["method"] == "mediaPurchase" and lines[0]["object"]["media"]["id"] == BIG
    _stop(tail)


def test_normalized_keeps_big_numbers():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    _big_events(api)
    tail = _tail(api)
    tail.wait_stdout_lines(2, timeout=10)
    lines = cbtest.json_lines(tail.stdout_text())
    assert lines[0]["media"] == {"id": str(BIG), "name": "set", "type": "photos",
                                 "tokens": BIG}, lines[0]
    assert lines[1]["tip"]["tokens"] == 9223372036854775807
    _stop(tail)


ODD_ANON = ["true", 1, None, "false", [], {}, 0]


def _anon_events(api):
    return api.add_events("alice", [
        {"method": "tip", "object": {"broadcaster": "alice",
                                     "user": {"username": "secretfan%d" % i},
                                     "tip": {"tokens": 5, "isAnon": v, "message": ""}}}
        for i, v in enumerate(ODD_ANON)])


def test_odd_is_anon_hides_the_tipper():
    for extra in ([], ["--raw"]):
        api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
        _anon_events(api)
        tail = _tail(api, *extra)
        tail.wait_stdout_lines(len(ODD_ANON), timeout=10)
        out = tail.stdout_text()
        assert "secretfan" not in out, "%s: a tipper leaked:\n%s" % (extra, out)
        for ln in cbtest.json_lines(out):
            if extra:
                assert ln["object"]["user"] is None, ln
            else:
                assert ln["user"] is None and ln["tip"]["is_anon"] is True, ln
        assert "secretfan" not in tail.stderr_text()
        _stop(tail)


def test_expose_anonymous_tippers():
    for extra in (["--expose-anonymous-tippers"], ["--raw", "--expose-anonymous-tippers"]):
        api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
        _anon_events(api)
        tail = _tail(api, *extra)
        tail.wait_stdout_lines(len(ODD_ANON), timeout=10)
        lines = cbtest.json_lines(tail.stdout_text())
        for i, ln in enumerate(lines):
            user = ln["object"]["user"] if "--raw" in extra else ln["user"]
            assert user["username"] == "secretfan%d" % i, ln
            if "--raw" not in extra:
                assert ln["tip"]["is_anon"] is True
        _stop(tail)


def _redirect(location):
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    api.add_faults("alice", [{"redirect": location, "status": 302}])
    tail = _tail(api)
    rc = tail.wait(10)
    assert rc == 1, "exit %s, want 1 on a redirect\n%s" % (rc, tail.describe())
    err = tail.stderr_text()
    cbtest.assert_no_secret(err, TOKEN, "stderr")
    return api, err


def test_redirect_logs_the_origin_only():
    api, err = _redirect("https://elsewhere.example:8443/events/alice/%s/?i=1-0" % TOKEN)
    assert "redirect to https://elsewhere.example:8443 (never followed)" in err, err
    assert "/events/alice" not in err.split("redirect to", 1)[1].split("\n", 1)[0], err


def test_redirect_relative_location():
    api, err = _redirect("/login?next=/events/alice/")
    assert "redirect to http://127.0.0.1:%d (never followed)" % api.port in err, err


def test_redirect_without_location():
    api, err = _redirect(None)
    assert "redirect to (no Location)" in err, err


if __name__ == "__main__":
    cbtest.run([test_recovers_from_one_401, test_recovers_from_one_403,
                test_two_refusals_then_good, test_every_timeout_wording, test_padded_next_url,
                test_raw_keeps_big_numbers, test_normalized_keeps_big_numbers,
                test_odd_is_anon_hides_the_tipper, test_expose_anonymous_tippers,
                test_redirect_logs_the_origin_only, test_redirect_relative_location,
                test_redirect_without_location])
