#!/usr/bin/env python3
"""cb2mqtt end to end: the fake Events API, a real mosquitto, the bridge.

Checks every row of SPEC section 5's topic table from a subscriber, the
payloads field by field against SPEC section 3, SIGTERM (offline + exit 0),
SIGKILL (Last Will) and a restart after it losing nothing, a broker outage
losing nothing, one bad token among two broadcasters, all tokens bad (exit
3), and a bad setting (exit 2 naming it).
"""

import json
import signal
import time

import cbtest

ALL_TYPES = ["broadcast_start", "broadcast_stop", "room_subject_change", "user_enter",
             "user_leave", "follow", "unfollow", "fanclub_join", "chat_message",
             "private_message", "tip", "media_purchase"]
METHOD_OF = {"broadcast_start": "broadcastStart", "broadcast_stop": "broadcastStop",
             "room_subject_change": "roomSubjectChange", "user_enter": "userEnter",
             "user_leave": "userLeave", "follow": "follow", "unfollow": "unfollow",
             "fanclub_join": "fanclubJoin", "chat_message": "chatMessage",
             "private_message": "privateMessage", "tip": "tip",
             "media_purchase": "mediaPurchase"}
USER_KEYS = ["username", "color_group", "fc_auto_renew", "gender", "has_darkmode",
             "has_tokens", "in_fanclub", "in_private_show", "is_broadcasting",
             "is_follower", "is_mod", "is_owner", "is_silenced", "is_spying", "language",
             "recent_tips", "subgender"]
TOKEN_A = "tokAlice-0123456789abcdef"
TOKEN_B = "tokBob-fedcba9876543210"


user = cbtest.api_user
event = cbtest.api_event


class Rig:
    """Broker + fake API (own process) + subscriber + helpers to run the bridge."""

    def __init__(self, broadcasters=(("alice", TOKEN_A),), persistence=False):
        extra = []
        self.state_dir = cbtest.tempdir("cbtest-state-")
        if persistence:
            extra = ["persistence true", "persistence_location %s/" % cbtest.tempdir("cbtest-mp-"),
                     "autosave_interval 1"]
        self.broker = cbtest.Mosquitto(extra_conf=extra).start()
        args = ["--max-wait", "1"]
        for name, tok in broadcasters:
            args += ["--broadcaster", "%s:%s" % (name, tok)]
        self.api = cbtest.FakeApiProcess(args)
        cbtest.on_cleanup(self.api.stop)
        # With a broker that restarts, only a persistent session (-c) gets
        # what was published before the subscriber itself reconnected.
        self.sub = cbtest.Subscriber(self.broker, topics=("cb/#",), qos=1,
                                     extra=("-c",) if persistence else ()).start()
        cbtest.on_cleanup(self.sub.stop)
        self.bridge = None

    def env(self, broadcasters, **extra):
        return cbtest.bridge_env(self.broker.url, self.api.base_url, self.state_dir,
                                 broadcasters, dict({"CB2MQTT_MQTT_CLIENT_ID": "cb2mqtt-test"},
                                                    **extra))

    def start_bridge(self, broadcasters=(("alice", TOKEN_A),), **extra):
        self.bridge = cbtest.Process([cbtest.bridge_program()],
                                     env=self.env(broadcasters, **extra), name="cb2mqtt")
        return self.bridge


def no_secret_anywhere(rig, tokens):
    logs = rig.bridge.stderr_text() + rig.bridge.stdout_text()
    for tok in tokens:
        for form in cbtest.secret_forms(tok):
            assert form not in logs, "token form %r in the bridge's log" % form
            for m in rig.sub.messages():
                assert form.encode() not in m.payload, "token in MQTT message on %s" % m.topic


def check_user(u, name):
    assert list(u.keys()) == USER_KEYS, list(u.keys())
    assert u["username"] == name
    assert u["color_group"] == "tr" and u["fc_auto_renew"] is False
    assert u["has_darkmode"] is True and u["language"] == "en"
    assert u["subgender"] is None  # "" upstream means none


def test_every_topic_and_payload():
    rig = Rig()
    api = rig.api.control
    events = [
        event("broadcastStart", user=user("alice")),
        event("userEnter", user=user("bob")),
        event("userEnter", user=user("carol")),
        event("userLeave", user=user("carol")),
        event("follow", user=user("bob")),
        event("unfollow", user=user("dave")),
        event("fanclubJoin", user=user("bob")),
        event("chatMessage", user=user("bob"), message={"message": "hello", "color": "#fff",
              "bgColor": None, "font": "default", "orig": "hello"}),
        event("privateMessage", user=user("bob"), message={"message": "psst", "color": "",
              "font": "default", "fromUser": "bob", "toUser": "alice"}),
        event("tip", user=user("bob"), tip={"tokens": 25, "isAnon": False, "message": "| hi"}),
        event("tip", user=user("erin"), tip={"tokens": 100, "isAnon": True, "message": ""}),
        event("mediaPurchase", user=user("bob"), media={"id": 17, "name": "set", "type": "photos",
              "tokens": 50}),
        event("roomSubjectChange", subject="Goal: 500 tokens #fun"),
        event("someFutureEvent", extra={"x": 1}),
        event("broadcastStop"),
    ]
    ids = api.add_events("alice", events)
    bridge = rig.start_bridge()

    rig.sub.wait_for(lambda m: m.topic == "cb/alice/broadcast_stop", timeout=20,
                     what="the last event")
    msgs = rig.sub.messages()
    by_topic = {}
    for m in msgs:
        by_topic.setdefault(m.topic, []).append(m)

    status = by_topic["cb/bridge/status"]
    assert status[0].text == "online"
    info = by_topic["cb/bridge/info"][-1].json()
    assert info["broadcasters"] == ["alice"] and "version" in info and "started_at" in info
    assert by_topic["cb/alice/availability"][-1].text == "online"

    # Events: one topic per type, not retained, in id order, SPEC 3 shape.
    ev_msgs = [m for m in msgs if m.topic.split("/")[-1] in ALL_TYPES + ["some_future_event"]
               and m.topic.count("/") == 2]
    got_ids = [m.json()["id"] for m in ev_msgs]
    assert got_ids == ids, (got_ids, ids)
    for m in ev_msgs:
        p = m.json()
        assert m.retained is False
        assert m.qos == 1
        assert m.topic == "cb/alice/" + p["event_type"]
        keys = list(p.keys())
        assert keys[:5] == ["id", "event_type", "broadcaster", "timestamp", "user"], keys
        assert p["broadcaster"] == "alice"
        assert p["timestamp"].endswith("Z") and "T" in p["timestamp"]
    tips = [m.json() for m in by_topic["cb/alice/tip"]]
    assert tips[0]["tip"] == {"tokens": 25, "is_anon": False, "message": "hi"}
    check_user(tips[0]["user"], "bob")
    assert tips[1]["tip"] == {"tokens": 100, "is_anon": True, "message": ""}
    assert tips[1]["user"] is None, "anonymous tipper exposed"
    chat = by_topic["cb/alice/chat_message"][0].json()
    assert chat["message"] == {"text": "hello", "color": "#fff", "bg_color": None,
                               "font": "default", "orig": "hello", "from_user": None,
                               "to_user": None}
    pm = by_topic["cb/alice/private_message"][0].json()
    assert pm["message"]["from_user"] == "bob" and pm["message"]["to_user"] == "alice"
    media = by_topic["cb/alice/media_purchase"][0].json()
    assert media["media"] == {"id": "17", "name": "set", "type": "photos", "tokens": 50}
    subj = by_topic["cb/alice/room_subject_change"][0].json()
    assert subj["subject"] == "Goal: 500 tokens #fun"
    unknown = by_topic["cb/alice/some_future_event"][0].json()
    assert unknown["event_type"] == "some_future_event" and unknown["raw"]["extra"] == {"x": 1}
    assert by_topic["cb/alice/broadcast_start"][0].json()["user"]["username"] == "alice"

    # Start and stop came in one batch: both edges still reach the state topic.
    edges = [m.text for m in by_topic["cb/alice/state/broadcasting"]]
    assert edges[-2:] == ["true", "false"], edges

    # Retained state topics, checked from a fresh subscriber (retained flag).
    late = cbtest.Subscriber(rig.broker, topics=("cb/#",), qos=1).start()
    cbtest.on_cleanup(late.stop)
    late.wait_for(lambda m: m.topic == "cb/alice/state", timeout=10)
    time.sleep(0.5)
    ret = {m.topic: m for m in late.messages() if m.retained}
    assert ret["cb/bridge/status"].text == "online"
    assert ret["cb/alice/availability"].text == "online"
    assert ret["cb/alice/state/broadcasting"].text == "false"
    assert ret["cb/alice/state/subject"].text == "Goal: 500 tokens #fun"
    assert ret["cb/alice/state/session_tokens"].text == "125"
    assert ret["cb/alice/state/viewers"].text == "0"  # reset by broadcast_stop
    st = ret["cb/alice/state"].json()
    assert st["broadcasting"] is False and st["session_tokens"] == 125
    assert st["subject"] == "Goal: 500 tokens #fun"
    assert st["last_tip"]["tokens"] == 100 and st["last_tip"]["is_anon"] is True
    assert st["last_tip"].get("username") is None
    assert "cb/bridge/info" in ret
    assert not any(m.retained for m in late.messages()
                   if m.topic.split("/")[-1] in ALL_TYPES and m.topic.count("/") == 2)

    # SIGTERM: offline on availability and status, exit 0.
    rig.sub.clear()
    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(10) == 0, bridge.describe()
    msgs = {m.topic: m.text for m in rig.sub.messages()}
    assert msgs.get("cb/alice/availability") == "offline", msgs
    assert msgs.get("cb/bridge/status") == "offline", msgs
    no_secret_anywhere(rig, [TOKEN_A])


def test_sigkill_will_and_restart_loses_nothing():
    rig = Rig()
    api = rig.api.control
    first = api.generate("alice", 300)
    bridge = rig.start_bridge()
    rig.sub.wait_count("cb/alice/+", 300, timeout=30)
    time.sleep(1.5)  # let a cursor save happen
    bridge.send_signal(signal.SIGKILL)
    bridge.wait(5)
    rig.sub.wait_for(lambda m: m.topic == "cb/bridge/status" and m.text == "offline",
                     timeout=10, what="the Last Will")
    second = api.generate("alice", 200)
    rig.start_bridge()
    want = first + second
    def delivered():
        ids = [m.json()["id"] for m in rig.sub.messages("cb/alice/+")
               if m.topic.split("/")[-1] in ALL_TYPES]
        return set(want) <= set(ids) and ids
    ids = cbtest.wait_until(delivered, 30, what="all 500 events")
    # In order per broadcaster apart from re-deliveries after the kill.
    dedup = []
    for i in ids:
        if i not in dedup:
            dedup.append(i)
    assert dedup == want, "lost or reordered events"
    dup = len(ids) - len(dedup)
    print("  500 events, %d re-delivered after SIGKILL" % dup)
    assert dup <= 300


def test_broker_outage_loses_nothing():
    rig = Rig(persistence=True)
    api = rig.api.control
    rig.start_bridge()
    ids = api.generate("alice", 100)
    rig.sub.wait_count("cb/alice/+", 100, timeout=20)
    rig.broker.stop()
    ids += api.generate("alice", 300)  # polled while the broker is away
    time.sleep(3)
    rig.broker.start()
    ids += api.generate("alice", 100)
    def all_there():
        got = [m.json()["id"] for m in rig.sub.messages("cb/alice/+")
               if m.topic.split("/")[-1] in ALL_TYPES]
        return set(ids) <= set(got) and got
    try:
        got = cbtest.wait_until(all_there, 40, what="every event after the outage")
    except AssertionError:
        seen = {m.json()["id"] for m in rig.sub.messages("cb/alice/+")
                if m.topic.split("/")[-1] in ALL_TYPES}
        missing = [i for i in ids if i not in seen]
        print("  %d of %d events missing, first %s" % (len(missing), len(ids), missing[:5]))
        raise
    order = []
    for i in got:
        if i not in order:
            order.append(i)
    assert order == ids


def test_one_bad_token_and_all_bad():
    rig = Rig(broadcasters=(("alice", TOKEN_A), ("bob", TOKEN_B)))
    api = rig.api.control
    ids = api.generate("alice", 20)
    bridge = rig.start_bridge(broadcasters=(("alice", TOKEN_A), ("bob", "wrong-token-123")))
    rig.sub.wait_count("cb/alice/+", 20, timeout=20)
    rig.sub.wait_for(lambda m: m.topic == "cb/bob/availability" and m.text == "offline",
                     timeout=10, what="bob offline")
    assert bridge.alive()
    more = api.generate("alice", 5)
    rig.sub.wait_count("cb/alice/+", 25, timeout=20)
    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(10) == 0
    no_secret_anywhere(rig, [TOKEN_A, "wrong-token-123"])
    assert ids and more

    bad = rig.start_bridge(broadcasters=(("alice", "bad-1-xxxxxxxx"), ("bob", "bad-2-yyyyyyyy")))
    assert bad.wait(20) == 3, bad.describe()
    assert "authentication" in bad.stderr_text()


def test_bad_setting_exits_2_naming_it():
    rig = Rig()
    p = rig.start_bridge(CB2MQTT_MQTT_QOS="7")
    assert p.wait(10) == 2, p.describe()
    assert "config: mqtt.qos:" in p.stderr_text(), p.stderr_text()
    assert not [m for m in rig.sub.messages() if m.topic.startswith("cb/")]


if __name__ == "__main__":
    cbtest.run([test_every_topic_and_payload, test_sigkill_will_and_restart_loses_nothing,
                test_broker_outage_loses_nothing, test_one_bad_token_and_all_bad,
                test_bad_setting_exits_2_naming_it])
