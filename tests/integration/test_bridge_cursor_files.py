#!/usr/bin/env python3
"""cb2mqtt's cursor and state files against what can go wrong (issue 15,
defects 2, 3 and 5), with the fake Events API, a real mosquitto and the
bridge:

- A fresh start whose first batch holds only an event with an id that is
  not <ms>-<seq>: the event is delivered, the bridge keeps running, and the
  id never becomes the saved last id (it used to exit 1, "cannot write the
  cursor file ...: Invalid argument").
- A cursor saved with timeout=30 and a restart configured with timeout=3:
  every request asks timeout=3 (only i= carries over).
- A cursor or state file that exists but cannot be read: exit 1 at start,
  naming the file, which is left as it was (no silent start from the live
  feed over it).
- state_dir gone while running (the writer thread's batch fails): exit 1,
  naming the file, rather than deliver with no cursor saved.
"""

import json
import os

import cbtest

TOKEN = "cursorFilesTok-2a3b4c5d"
NAME = "alice"


class Rig:
    def __init__(self, **api_kw):
        api_kw.setdefault("max_wait", 1.0)
        self.api = cbtest.fake_api({NAME: TOKEN}, **api_kw)
        self.broker = cbtest.Mosquitto().start()
        cbtest.on_cleanup(self.broker.stop)
        self.sub = cbtest.Subscriber(self.broker, topics=("cb/%s/#" % NAME,), qos=1).start()
        cbtest.on_cleanup(self.sub.stop)
        self.state_dir = cbtest.tempdir("cbtest-state-")
        self.bridge = None

    def start(self, **extra):
        env = cbtest.bridge_env(self.broker.url, self.api.base_url, self.state_dir,
                                [(NAME, TOKEN)], extra)
        self.bridge = cbtest.start_bridge(env)
        return self.bridge

    def cursor_path(self):
        return os.path.join(self.state_dir, NAME + ".cursor")

    def cursor(self):
        with open(self.cursor_path()) as f:
            return json.load(f)

    def event_ids(self):
        return [m.json()["id"] for m in self.sub.messages("cb/%s/+" % NAME)
                if m.topic.rsplit("/", 1)[1] not in ("availability", "state", "health")]


def tip(tokens):
    return cbtest.api_event("tip", NAME, user=cbtest.api_user("bob"),
                            tip={"tokens": tokens, "isAnon": False, "message": ""})


def test_odd_id_first_batch_is_not_fatal():
    rig = Rig()
    odd = tip(7)
    odd["id"] = "not-an-id"
    # The first answer: only the odd event, and a nextUrl before every
    # event the fake API will number itself.
    next_url = rig.api.feed_url(NAME) + "?i=1000-0&timeout=1"
    rig.api.add_faults(NAME, [{"status": 200, "body": {"events": [odd], "nextUrl": next_url}}])
    bridge = rig.start()
    rig.sub.wait_for(lambda m: m.topic == "cb/alice/tip", timeout=15,
                     what="the odd event delivered")
    # Past several save intervals: the cursor write must not stop it.
    cbtest.wait_until(lambda: len(rig.api.event_requests(NAME)) >= 4 or not bridge.alive(), 15,
                      what="polling after the odd event")
    assert bridge.alive(), bridge.describe()
    assert "cannot write the cursor file" not in bridge.stderr_text(), bridge.describe()
    cur = rig.cursor()
    assert cur.get("last_id") != "not-an-id", cur
    assert cur.get("i") == "1000-0", cur
    # Normal events after it flow, and become the last id.
    ids = rig.api.add_events(NAME, [tip(1), tip(2)])
    cbtest.wait_until(lambda: set(ids) <= set(rig.event_ids()), 15, what="the later events")
    assert bridge.stop() == 0, bridge.describe()
    assert rig.cursor()["last_id"] == ids[-1], rig.cursor()
    assert rig.event_ids().count("not-an-id") == 1


def test_odd_id_between_good_ids_keeps_last_good_id():
    rig = Rig()
    ids = rig.api.add_events(NAME, [tip(1)])
    bridge = rig.start()
    cbtest.wait_until(lambda: ids[0] in rig.event_ids(), 15, what="the first event")
    odd = tip(3)
    odd["id"] = "1-2-3"
    next_url = rig.api.feed_url(NAME) + "?i=%s&timeout=1" % ids[0]
    rig.api.add_faults(NAME, [{"status": 200, "body": {"events": [odd], "nextUrl": next_url}}])
    # Whether the session hands out an odd id after a good one is the
    # library's rule (SPEC 3: delivered); here the bridge's side: it goes
    # on, and the saved last id stays the good one.
    cbtest.wait_until(lambda: any(r.get("fault") for r in rig.api.event_requests(NAME)), 15,
                      what="the odd batch served")
    later = rig.api.add_events(NAME, [tip(4)])
    cbtest.wait_until(lambda: later[0] in rig.event_ids(), 15, what="the event after it")
    assert bridge.alive(), bridge.describe()
    assert bridge.stop() == 0, bridge.describe()
    assert rig.cursor()["last_id"] == later[0], rig.cursor()
    assert "1-2-3" not in json.dumps(rig.cursor())


def test_saved_timeout_never_carries_over():
    rig = Rig(max_wait=0.5)
    ids = rig.api.add_events(NAME, [tip(5)])
    bridge = rig.start(CB2MQTT_EVENTS_TIMEOUT="30")
    cbtest.wait_until(lambda: ids[0] in rig.event_ids(), 15, what="the first event")
    cbtest.wait_until(lambda: os.path.exists(rig.cursor_path()), 10, what="a saved cursor")
    assert bridge.stop() == 0, bridge.describe()
    # A cursor written by earlier builds held the whole nextUrl, timeout=30 in it.
    with open(rig.cursor_path(), "w") as f:
        json.dump({"version": 1, "last_id": ids[0],
                   "url": rig.api.feed_url(NAME) + "?i=%s&timeout=30" % ids[0]}, f)
    since = len(rig.api.requests())
    bridge = rig.start(CB2MQTT_EVENTS_TIMEOUT="3")
    more = rig.api.add_events(NAME, [tip(6)])
    cbtest.wait_until(lambda: more[0] in rig.event_ids(), 15, what="the event after the restart")
    cbtest.wait_until(lambda: len([r for r in rig.api.requests(NAME, since)
                                   if r["kind"] == "events"]) >= 3, 15, what="polls")
    assert bridge.stop() == 0, bridge.describe()
    reqs = [r for r in rig.api.requests(NAME, since) if r["kind"] == "events"]
    assert reqs[0]["query"].get("i") == ids[0], reqs[0]
    for r in reqs:
        assert r["query"].get("timeout") == "3", "request asked %r" % r["raw_query"]
    assert rig.event_ids().count(ids[0]) == 1, rig.event_ids()


def expect_unreadable_stops(kind):
    rig = Rig()
    path = os.path.join(rig.state_dir, NAME + "." + kind)
    # Root reads any file whatever its mode: a folder in its place is what
    # cannot be read for every user (read() fails with EISDIR).
    os.makedirs(rig.state_dir, exist_ok=True)
    os.mkdir(path)
    with open(os.path.join(path, "keep"), "w") as f:
        f.write("x")
    bridge = rig.start()
    rc = bridge.wait(20)
    err = bridge.stderr_text()
    assert rc == 1, bridge.describe()
    assert path in err, "the message does not name %s:\n%s" % (path, err)
    assert "cannot read the %s file" % kind in err, err
    assert os.path.isdir(path) and os.listdir(path) == ["keep"], "the file was touched"
    assert not [r for r in rig.api.event_requests(NAME)], "it polled before stopping"


def test_unreadable_cursor_file_stops_at_start():
    expect_unreadable_stops("cursor")


def test_unreadable_state_file_stops_at_start():
    expect_unreadable_stops("state")


def test_state_dir_gone_while_running_stops():
    rig = Rig()
    bridge = rig.start()
    ids = rig.api.add_events(NAME, [tip(5)])
    rig.sub.wait_for(lambda m: m.topic == "cb/%s/tip" % NAME, timeout=20, what="the first tip")
    cbtest.wait_until(lambda: os.path.exists(rig.cursor_path()), timeout=10,
                      what="the first cursor save")
    assert rig.cursor()["last_id"] == ids[0]
    # Renamed away: every write into the configured path fails (ENOENT),
    # for root too.
    os.rename(rig.state_dir, rig.state_dir + ".moved")
    cbtest.on_cleanup(lambda: os.rename(rig.state_dir + ".moved", rig.state_dir))
    rig.api.add_events(NAME, [tip(6)])
    rc = bridge.wait(20)
    err = bridge.stderr_text()
    assert rc == 1, bridge.describe()
    assert "cannot write the cursor file %s.cursor in %s" % (NAME, rig.state_dir) in err, err


def test_state_dir_gone_then_stop_is_not_clean():
    """The same, but SIGTERM comes before the once-a-second save: the stop's
    own save fails, and the exit status says so (1, not 0)."""
    rig = Rig()
    bridge = rig.start()
    rig.api.add_events(NAME, [tip(5)])
    rig.sub.wait_for(lambda m: m.topic == "cb/%s/tip" % NAME, timeout=20, what="the first tip")
    cbtest.wait_until(lambda: os.path.exists(rig.cursor_path()), timeout=10,
                      what="the first cursor save")
    os.rename(rig.state_dir, rig.state_dir + ".moved")
    cbtest.on_cleanup(lambda: os.rename(rig.state_dir + ".moved", rig.state_dir))
    rig.api.add_events(NAME, [tip(6)])
    rig.sub.wait_count("cb/%s/tip" % NAME, 2, timeout=20)
    rc = bridge.stop(timeout=15)
    assert rc == 1, bridge.describe()
    assert "cannot write the cursor file" in bridge.stderr_text(), bridge.stderr_text()


def test_cursor_readable_only_by_another_user_stops_as_nobody():
    # The case of the issue, for real: the bridge runs as another user than
    # the one that owns the cursor. Needs root to switch users.
    if os.geteuid() != 0:
        cbtest.skip("needs root to run the bridge as nobody")
    setpriv = cbtest.require_tool("setpriv")
    rig = Rig()
    os.chmod(rig.state_dir, 0o777)
    path = rig.cursor_path()
    with open(path, "w") as f:
        json.dump({"version": 2, "i": "1000-0", "last_id": "1000-0"}, f)
    os.chmod(path, 0o600)
    env = cbtest.bridge_env(rig.broker.url, rig.api.base_url, rig.state_dir, [(NAME, TOKEN)])
    # ASan's log and leak check need nothing of root; nobody cannot read it.
    bridge = cbtest.Process([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                             cbtest.bridge_program()], env=env, name="cb2mqtt-nobody")
    rc = bridge.wait(20)
    err = bridge.stderr_text()
    assert rc == 1, bridge.describe()
    assert path in err and "Permission denied" in err, err
    with open(path) as f:
        assert json.load(f)["i"] == "1000-0"


if __name__ == "__main__":
    cbtest.run([test_odd_id_first_batch_is_not_fatal,
                test_odd_id_between_good_ids_keeps_last_good_id,
                test_saved_timeout_never_carries_over,
                test_unreadable_cursor_file_stops_at_start,
                test_unreadable_state_file_stops_at_start,
                test_state_dir_gone_while_running_stops,
                test_state_dir_gone_then_stop_is_not_clean,
                test_cursor_readable_only_by_another_user_stops_as_nobody])
