#!/usr/bin/env python3
"""cb2mqtt against hostile input (issue 6): the fake Events API, a real
mosquitto, the bridge.

- Usernames, messages and subjects holding MQTT wildcards, '/', NUL,
  control characters, lone UTF-16 surrogates and bytes that are not UTF-8,
  and an event whose "broadcaster" field is itself a wildcard: every
  payload is valid UTF-8 (and JSON where it is JSON), every topic comes
  from the configured broadcaster name only, nothing is lost.
- Response bodies over the 8 MiB cap and JSON nested 10,000 deep: retried,
  the bridge goes on and delivers what follows.
- The token never appears in a log line or a message.
- A broadcaster name that is not allowed, and settings files with a
  missing ']', a duplicate key or a 1 MB line: exit 2 with the reason
  (and the file's line number), no crash, nothing published.
"""

import json
import os
import re
import signal

import cbtest

TOKEN = "hostileBridgeTok-5e6f7a8b9c"
CTRL = "".join(chr(c) for c in range(1, 32)) + "\x7f"
# A topic of ours: base, the configured name or "bridge", then fixed words.
TOPIC_RE = re.compile(r"^cb/(alice|bridge)(/[a-z_]+)*$")


def user(name):
    return {"username": name, "colorGroup": "tr", "gender": "m", "language": "en"}


event = cbtest.api_event


class Rig:
    """Broker + fake API (own process) + a subscriber to everything."""

    def __init__(self):
        self.state_dir = cbtest.tempdir("cbtest-state-")
        self.broker = cbtest.Mosquitto().start()
        self.api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster",
                                          "alice:%s" % TOKEN])
        cbtest.on_cleanup(self.api.stop)
        self.sub = cbtest.Subscriber(self.broker, topics=("#",), qos=1).start()
        cbtest.on_cleanup(self.sub.stop)
        self.bridge = None

    def env(self, **extra):
        env = clean_env()
        env.update({
            "CB2MQTT_MQTT_URL": self.broker.url,
            "CB2MQTT_MQTT_CLIENT_ID": "cb2mqtt-hostile",
            "CB2MQTT_EVENTS_API": self.api.base_url,
            "CB2MQTT_EVENTS_STATE_DIR": self.state_dir,
            "CB2MQTT_EVENTS_TIMEOUT": "1",
            "CB2MQTT_EVENTS_RETRY_BACKOFF": "0.2",
            "CB2MQTT_EVENTS_RETRY_MAX_DELAY": "1",
            "CB2MQTT_HOMEASSISTANT_DISCOVERY": "false",
            "CB2MQTT_LOG_LEVEL": "debug",
            "CB2MQTT_BROADCASTERS": "alice",
            "CB2MQTT_BROADCASTER_ALICE_TOKEN": TOKEN,
        })
        env.update(extra)
        return env

    def start_bridge(self, **extra):
        self.bridge = cbtest.Process([cbtest.bridge_program()], env=self.env(**extra),
                                     name="cb2mqtt")
        return self.bridge


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("CB2MQTT_") or k.startswith("CB_"):
            del env[k]
    return env


def nested_body(depth):
    return '{"events":' + "[" * depth + "]" * depth + ',"nextUrl":null}'


def latin1_body():
    """Events whose strings hold bytes that are not UTF-8 (sent as is)."""
    bad = "\xff\xc3(\xed\xa0\x80\xe2\x82"  # each char is one byte in latin-1
    evs = [
        {"method": "chatMessage", "id": "1000-0", "object": {
            "broadcaster": "alice" + bad, "user": user("u" + bad),
            "message": {"message": "m" + bad, "color": bad, "bgColor": bad, "font": bad,
                        "fromUser": bad, "toUser": bad, "orig": bad}}},
        {"method": "tip", "id": "1000-1", "object": {
            "broadcaster": "alice", "user": user("t" + bad),
            "tip": {"tokens": 7, "isAnon": False, "message": "| " + bad}}},
        {"method": "roomSubjectChange", "id": "1000-2", "object": {
            "broadcaster": "alice", "subject": "s" + bad}},
        {"method": "mediaPurchase", "id": "1000-3", "object": {
            "broadcaster": "alice", "user": user(bad),
            "media": {"id": bad, "name": bad, "type": bad, "tokens": 1}}},
    ]
    # json.dumps would escape the characters; they must go out as bytes.
    return json.dumps({"events": evs, "nextUrl": None}, ensure_ascii=False)


def strings_of(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings_of(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings_of(x)


def test_hostile_payloads_and_bodies():
    rig = Rig()
    api = rig.api.control
    wild = "a/+#\u0000b" + CTRL
    events = [
        event("userEnter", user=user(wild)),
        event("chatMessage", user=user("+"), message={"message": "#/\u0000x" + CTRL,
                                                      "fromUser": "\ud800", "toUser": "#"}),
        # The event's own broadcaster field says another room: ignored for topics.
        event("roomSubjectChange", b="evil/#", subject="s/+/#\u0000\n\t\ud800x" + CTRL),
        event("tip", b="+", user=user("#"), tip={"tokens": 3, "isAnon": False,
                                                 "message": "| \udfff+#"}),
        event("mediaPurchase", user=user("$SYS/x"), media={"id": "../#", "name": "\ud83d/+",
                                                           "type": "+", "tokens": 2}),
        event("follow", b="", user=user("\u202e\u0000")),
        event("broadcastStop"),
    ]
    ids = api.add_events("alice", events)
    # Before the stream: bodies over the cap, nesting 10,000 deep, and raw
    # bytes that are not UTF-8 (with nextUrl null, the cursor stays put).
    api.add_faults("alice", [
        {"huge": 9 * 1024 * 1024},
        {"body": nested_body(10000)},
        {"body": '{"events":[{"method":"follow","id":"999-0","object":'
                 + "[" * 10000 + "]" * 10000 + "}],\"nextUrl\":null}"},
        {"body": latin1_body(), "encoding": "latin-1"},
    ])
    bridge = rig.start_bridge()
    rig.sub.wait_for(lambda m: m.topic == "cb/alice/broadcast_stop", timeout=60,
                     what="the last event\n" + bridge.describe())
    assert bridge.alive(), bridge.describe()

    msgs = rig.sub.messages()
    assert msgs
    for m in msgs:
        # Topics: the configured name only, never text from an event.
        assert TOPIC_RE.match(m.topic), "unexpected topic %r" % m.topic
        assert not any(c in m.topic for c in "+#\x00") and "evil" not in m.topic
        # Payloads: strict UTF-8, JSON where JSON is published.
        try:
            text = m.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError("payload on %s is not UTF-8: %r" % (m.topic, m.payload))
        assert "\x00" not in text, m
        if text[:1] in "{[":
            doc = json.loads(text)
            for s in strings_of(doc):
                # no lone surrogate made it through JSON escapes either
                s.encode("utf-8")

    events_out = [m for m in msgs if m.topic.count("/") == 2 and m.topic.split("/")[1] == "alice"
                  and m.topic.split("/")[2] not in ("state", "availability", "health")]
    got = [m.json() for m in events_out]
    got_ids = [p["id"] for p in got]
    # The 4 items of the raw-bytes body, then the stream, nothing twice.
    assert got_ids == ["1000-0", "1000-1", "1000-2", "1000-3"] + ids, got_ids
    by_id = {p["id"]: p for p in got}
    fffd = "\ufffd"
    u = by_id["1000-0"]
    assert u["broadcaster"].startswith("alice" + fffd), u
    assert u["user"]["username"].startswith("u" + fffd), u
    assert all(fffd in u["message"][k] for k in ("text", "color", "bg_color", "font",
                                                   "from_user", "to_user")), u
    assert by_id["1000-3"]["media"]["name"].startswith(fffd)
    # NUL ends a string (cJSON keeps C strings); the rest is kept as text.
    assert by_id[ids[0]]["user"]["username"] == "a/+#", by_id[ids[0]]
    assert by_id[ids[1]]["message"]["from_user"] == fffd, by_id[ids[1]]
    assert by_id[ids[2]]["subject"] == "s/+/#", by_id[ids[2]]
    assert by_id[ids[2]]["broadcaster"] == "evil/#"  # payload text, not a topic
    assert by_id[ids[3]]["tip"]["message"] == fffd + "+#", by_id[ids[3]]
    assert by_id[ids[4]]["media"]["name"] == fffd + "/+", by_id[ids[4]]

    # Derived state: the subject came out repaired, as UTF-8 text.
    subjects = [m.payload.decode("utf-8") for m in rig.sub.messages("cb/alice/state/subject")]
    assert subjects == ["s" + fffd * 2 + "(" + fffd * 4, "s/+/#"], subjects

    # The bad bodies were retried at the same cursor, and each was logged.
    log = bridge.stderr_text()
    assert "over the size cap" in log, log[-3000:]
    assert log.count("not an Events API object") >= 2, log[-3000:]
    reqs = api.requests("alice")
    ev_reqs = [r for r in reqs if r.get("kind") == "events"]
    assert len(ev_reqs) >= 5
    assert len({r["raw_query"] for r in ev_reqs[:4]}) == 1, [r["raw_query"] for r in ev_reqs[:5]]

    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()
    logs = bridge.stderr_text() + bridge.stdout_text()
    for form in cbtest.secret_forms(TOKEN):
        assert form not in logs, "token form %r in the bridge's log" % form
        for m in rig.sub.messages():
            assert form.encode() not in m.payload, "token in a message on %s" % m.topic


# Unknown methods (issue 15, SPEC 3): a valid level is used as it is; any
# other goes to cb/<b>/unknown with the method kept in its payload.
ODD_METHODS = ["", "a/b", "+", "#", "x" * 300, "ctl\x01x", "na\u00efve", "\u0000",
               "a b", "state", "health", "availability", "user_enter", "Tip", "x" * 65]
VALID_METHODS = {"customThing": "custom_thing", "x" * 64: "x" * 64, "v2_event": "v2_event"}


def test_odd_methods_never_stop_the_bridge():
    rig = Rig()
    api = rig.api.control
    methods = ODD_METHODS + list(VALID_METHODS)
    evs = [{"method": m, "object": {"broadcaster": "alice", "n": i}}
           for i, m in enumerate(methods)]
    # A duplicate and a known event after them: the stream goes on.
    ids = api.add_events("alice", evs + [event("tip", user=user("bob"),
                                               tip={"tokens": 5, "isAnon": False,
                                                    "message": ""})])
    bridge = rig.start_bridge(CB2MQTT_EVENTS_PAYLOAD="raw")
    try:
        rig.sub.wait_for(lambda m: m.topic == "cb/alice/tip", timeout=30,
                         what="the tip after the odd methods")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, bridge.describe()))
    assert bridge.alive(), bridge.describe()
    # Raw payloads: an event is the JSON object with a "method".
    evmsgs = [m for m in rig.sub.messages() if m.topic.startswith("cb/alice/")
              and m.payload[:1] == b"{" and "method" in m.json()]
    got = [(m.topic, m.json()) for m in evmsgs]
    assert [p["id"] for _, p in got] == ids, [(t, p.get("id")) for t, p in got]
    for (topic, p), method in zip(got, methods):
        want = "cb/alice/" + VALID_METHODS.get(method, "unknown")
        assert topic == want, (method, topic, want)
        # Raw payloads keep the upstream method as it was (NUL ends it).
        assert p["method"] == method.split("\u0000")[0], (method, p)
    # No event went to a retained topic of the broadcaster.
    assert not [t for t, _ in got if t.split("/")[2] in ("state", "availability", "health")]
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()
    log = bridge.stderr_text()
    assert "out of memory" not in log, log[-3000:]

    # A restart resumes after them (no crash loop) and delivers nothing twice.
    rig.sub.clear()
    more = api.add_events("alice", [{"method": "", "object": {}}, event("follow")])
    bridge = rig.start_bridge()
    try:
        rig.sub.wait_for(lambda m: m.topic == "cb/alice/follow", timeout=30,
                         what="the follow after the restart")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, bridge.describe()))
    unknown = [m.json() for m in rig.sub.messages("cb/alice/unknown")]
    assert [p["id"] for p in unknown] == [more[0]], unknown
    assert unknown[0]["event_type"] == "" and unknown[0]["raw"] == {}, unknown
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()


def run_config(argv=(), env_extra=None, timeout=20):
    env = clean_env()
    env.update({"CB2MQTT_MQTT_URL": "mqtt://127.0.0.1:%d" % cbtest.free_port(),
                "CB2MQTT_EVENTS_STATE_DIR": cbtest.tempdir("cbtest-state-"),
                "CB2MQTT_HOMEASSISTANT_DISCOVERY": "false"})
    env.update(env_extra or {})
    p = cbtest.Process([cbtest.bridge_program()] + list(argv), env=env, name="cb2mqtt")
    rc = p.wait(timeout)
    return rc, p


def test_broadcaster_names_not_allowed():
    # (spaces and commas separate names in the list: not tested here)
    names = ["a/b", "a+b", "#", "+", "bridge", "$SYS", "caf\u00e9", "n" * 65, "..", "a.b",
             "\u202e"]
    for name in names:
        rc, p = run_config(env_extra={"CB2MQTT_BROADCASTERS": name, "CB_TOKEN": TOKEN})
        assert rc == 2, "name %r: exit %s\n%s" % (name, rc, p.describe())
        err = p.stderr_text()
        assert "the name must be" in err, "name %r: %s" % (name, err)
        assert TOKEN not in err
    # The same in a settings file.
    d = cbtest.tempdir("cbtest-ini-")
    for name in ["a+b", "x/y", "#", "bridge", "a b", ""]:
        path = os.path.join(d, "bad.ini")
        with open(path, "w") as f:
            f.write("[broadcaster:%s]\ntoken = %s\n" % (name, TOKEN))
        rc, p = run_config(["-c", path])
        assert rc == 2, "name %r: exit %s\n%s" % (name, rc, p.describe())
        assert "the name must be" in p.stderr_text(), p.stderr_text()
        assert TOKEN not in p.stderr_text()


def test_settings_files_refused_with_line_number():
    d = cbtest.tempdir("cbtest-ini-")
    good = "[broadcaster:alice]\ntoken = %s\n" % TOKEN
    cases = [
        ("missing_bracket", good + "[mqtt\nqos = 1\n", ":3: missing ']'"),
        ("duplicate_key", good + "[mqtt]\nqos = 1\nqos = 2\n", "line 5"),
        ("duplicate_token", "[broadcaster:alice]\ntoken = %s\ntoken = %s-2\n" % (TOKEN, TOKEN),
         "set twice"),
        ("long_line", good + "[mqtt]\nclient_id = " + "x" * (1000 * 1000) + "\n",
         ":4: line longer than"),
        ("long_token_line", "[broadcaster:alice]\ntoken = " + TOKEN * 30000 + "\n",
         ":2: line longer than"),
        ("nul", good + "[mqtt]\nqos = 1\x00\n", ":4: NUL byte"),
    ]
    for name, text, want in cases:
        path = os.path.join(d, name + ".ini")
        with open(path, "w") as f:
            f.write(text)
        rc, p = run_config(["-c", path])
        err = p.stderr_text()
        assert rc == 2, "%s: exit %s\n%s" % (name, rc, p.describe())
        assert want in err, "%s: want %r in %r" % (name, want, err[:500])
        if want.startswith(":"):
            assert path + want in err, "%s: the line is not named with the file: %r" % (
                name, err[:500])
        assert TOKEN not in err, "%s: token in stderr" % name
        assert len(err) < 4000, "%s: the error quotes too much (%d bytes)" % (name, len(err))


if __name__ == "__main__":
    cbtest.run([test_hostile_payloads_and_bodies, test_odd_methods_never_stop_the_bridge,
                test_broadcaster_names_not_allowed,
                test_settings_files_refused_with_line_number])
