#!/usr/bin/env python3
"""cb2mqtt end to end: SIGHUP reload (SPEC 5, Signals), with a real
mosquitto and the fake Events API.

The settings come from an INI file (-c). A SIGHUP with a bad file is
logged as `config: <section>.<key>: <reason>` and the running settings
stay: events keep flowing, none twice, and cb/bridge/status never says
offline. A SIGHUP that changes log.level applies it at once, without
touching the broadcaster (no duplicate, no second connect).

A SIGHUP that adds a broadcaster whose cursor file cannot be read is
refused as a whole. One that adds carol and removes bob starts carol and
stops bob: bob's retained topics and Home Assistant config are cleared,
alice is not touched (no request again, no duplicate), cb/bridge/status
never says offline. A new token for alice applies from her next request, resuming at
her cursor; a changed mqtt.keepalive reconnects, and alice's events keep
arriving, each once.
"""

import json
import os
import signal
import time

import cbtest

TOKEN_A = "tokAlice-0123456789abcdef"
TOKEN_A2 = "tokAliceRotated-13579bdf"
TOKEN_B = "tokBob-fedcba9876543210"
TOKEN_C = "tokCarol-2468ace02468ace0"

user = cbtest.api_user
event = cbtest.api_event


class Rig:
    """A broker, the fake API serving broadcasters [(name, token)], a QoS 1
    subscriber on topics (none when empty), a state dir and an INI path.
    The bridge's settings come from the INI alone: the environment's
    broadcasters and log level are removed, and the keys in drop."""

    def __init__(self, broadcasters, topics=("cb/#",), drop=()):
        self.state_dir = cbtest.tempdir("cbtest-state-")
        self.conf = cbtest.tempdir("cbtest-conf-")
        self.ini = os.path.join(self.conf, "cb2mqtt.ini")
        self.broker = cbtest.Mosquitto().start()
        args = ["--max-wait", "1"]
        for name, token in broadcasters:
            args += ["--broadcaster", "%s:%s" % (name, token)]
        self.api = cbtest.FakeApiProcess(args)
        cbtest.on_cleanup(self.api.stop)
        self.sub = None
        if topics:
            self.sub = cbtest.Subscriber(self.broker, topics=topics, qos=1).start()
            cbtest.on_cleanup(self.sub.stop)
        self.env = cbtest.bridge_env(self.broker.url, self.api.base_url, self.state_dir, ())
        for k in ("CB2MQTT_BROADCASTERS", "CB2MQTT_LOG_LEVEL") + tuple(drop):
            self.env.pop(k, None)

    def start(self):
        return cbtest.start_bridge(self.env, args=("-c", self.ini))


def tip(name, who):
    return event("tip", b=name, user=user(who), tip={"tokens": 5, "isAnon": False, "message": ""})


def write_ini(path, level="info", qos="1"):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("[mqtt]\nqos = %s\n\n[log]\nlevel = %s\n\n[broadcaster:alice]\ntoken = %s\n"
                % (qos, level, TOKEN_A))
    os.replace(path + ".tmp", path)


def test_sighup_bad_file_then_log_level():
    rig = Rig((("alice", TOKEN_A),))
    ini, api, sub = rig.ini, rig.api, rig.sub
    write_ini(ini)
    bridge = rig.start()

    ids = api.control.add_events("alice", [tip("alice", "bob")])
    sub.wait_for(lambda m: m.topic == "cb/alice/tip", timeout=20, what="the first tip")
    connects = bridge.stderr_text().count("mqtt: connected to")
    assert connects == 1, bridge.stderr_text()

    # A bad file: logged, the running settings stay, the bridge keeps going.
    write_ini(ini, qos="7")
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: "config: mqtt.qos:" in bridge.stderr_text(), timeout=10,
                      what="the reload error")
    assert "the running settings stay" in bridge.stderr_text()
    assert bridge.alive(), bridge.describe()
    ids += api.control.add_events("alice", [event("follow", user=user("carol"))])
    sub.wait_for(lambda m: m.topic == "cb/alice/follow", timeout=20, what="a follow after it")

    # log.level = debug applies at once (none before: the INI says info).
    assert " debug " not in bridge.stderr_text()
    write_ini(ini, level="debug")
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: "reload: log settings applied (level debug" in
                      bridge.stderr_text(), timeout=10, what="the log level applied")
    cbtest.wait_until(lambda: "reload: done; 1 broadcaster(s) untouched" in
                      bridge.stderr_text(), timeout=10, what="the reload done")
    before = len(bridge.stderr_text())
    ids += api.control.add_events("alice", [event("unfollow", user=user("carol"))])
    sub.wait_for(lambda m: m.topic == "cb/alice/unfollow", timeout=20, what="an unfollow")
    cbtest.wait_until(lambda: " debug " in bridge.stderr_text()[before:], timeout=10,
                      what="debug lines after the reload")

    # Nothing twice, no offline, no reconnect.
    time.sleep(1.5)
    events = [m.json()["id"] for m in sub.messages()
              if m.topic in ("cb/alice/tip", "cb/alice/follow", "cb/alice/unfollow")]
    assert events == ids, (events, ids)
    status = [m.text for m in sub.messages("cb/bridge/status")]
    assert "offline" not in status, status
    assert bridge.stderr_text().count("mqtt: connected to") == connects
    assert TOKEN_A not in bridge.stderr_text()
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()


def write_ini_many(path, broadcasters, keepalive=60, base="cb"):
    text = ("[mqtt]\nkeepalive = %d\nbase_topic = %s\n\n[homeassistant]\ndiscovery = true\n"
            % (keepalive, base))
    for name, token in broadcasters:
        text += "\n[broadcaster:%s]\ntoken = %s\n" % (name, token)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def retained_now(broker, topics=("cb/#", "homeassistant/#"), settle=1.5):
    """What a fresh subscriber gets: the retained messages, by topic."""
    sub = cbtest.Subscriber(broker, topics=topics, qos=1).start()
    time.sleep(settle)
    sub.stop()
    return {m.topic: m for m in sub.messages() if m.retained and m.payload}


def sighup_and_wait(bridge, n):
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: bridge.stderr_text().count("reload: reading the settings") >= n
                      and (bridge.stderr_text().count("the running settings stay")
                           + bridge.stderr_text().count("reload: done")) >= n,
                      timeout=15, what="reload %d" % n)


def test_sighup_add_remove_change_reconnect():
    rig = Rig((("alice", TOKEN_A), ("bob", TOKEN_B), ("carol", TOKEN_C)),
              drop=("CB2MQTT_HOMEASSISTANT_DISCOVERY",))
    state_dir, ini, broker, api, sub = rig.state_dir, rig.ini, rig.broker, rig.api, rig.sub
    write_ini_many(ini, (("alice", TOKEN_A), ("bob", TOKEN_B)))
    bridge = rig.start()

    ids = api.control.add_events("alice", [tip("alice", "dan")])
    api.control.add_events("bob", [tip("bob", "dan"),
                                   event("roomSubjectChange", b="bob", subject="hi bob")])
    sub.wait_for(lambda m: m.topic == "cb/alice/tip", timeout=20, what="alice's first tip")
    cbtest.wait_until(lambda: {"cb/bob/state/subject", "cb/bob/availability",
                               "cb/bob/health"} <= set(retained_now(broker, settle=0.5))
                      and "homeassistant/device/cb2mqtt_bob/config"
                      in retained_now(broker, settle=0.5), timeout=20,
                      what="bob's retained topics and HA config")
    alice_requests = len(api.control.requests("alice"))

    # An added broadcaster that cannot start (its cursor file cannot be
    # read: a folder) makes the whole reload refused: bob stays.
    os.mkdir(os.path.join(state_dir, "dave.cursor"))
    write_ini_many(ini, (("alice", TOKEN_A), ("dave", "tokDave-00000000000000")))
    sighup_and_wait(bridge, 1)
    assert "dave: cannot read the cursor file" in bridge.stderr_text()
    assert "reload: the running settings stay" in bridge.stderr_text()
    assert "reload: bob removed" not in bridge.stderr_text()
    kept = retained_now(broker, settle=0.5)
    assert "cb/bob/state/subject" in kept and \
        "homeassistant/device/cb2mqtt_bob/config" in kept, kept.keys()
    api.control.add_events("bob", [event("follow", b="bob", user=user("ivy"))])
    sub.wait_for(lambda m: m.topic == "cb/bob/follow", timeout=20, what="bob still running")

    # Add carol, remove bob: one reload.
    write_ini_many(ini, (("alice", TOKEN_A), ("carol", TOKEN_C)))
    sighup_and_wait(bridge, 2)
    assert "reload: done; 1 broadcaster(s) untouched, 1 added, 1 removed" in \
        bridge.stderr_text(), bridge.stderr_text()[-3000:]
    api.control.add_events("carol", [tip("carol", "erin")])
    sub.wait_for(lambda m: m.topic == "cb/carol/tip", timeout=20, what="carol's tip")
    ids += api.control.add_events("alice", [tip("alice", "fay")])
    sub.wait_count("cb/alice/tip", 2, timeout=20)
    cbtest.wait_until(lambda: not any(t.startswith("cb/bob/") or "cb2mqtt_bob" in t
                                      for t in retained_now(broker, settle=0.5)),
                      timeout=20, what="bob's retained topics cleared")
    retained = retained_now(broker)
    assert retained["cb/carol/availability"].text == "online", retained.keys()
    assert "homeassistant/device/cb2mqtt_carol/config" in retained_now(
        broker, topics=("homeassistant/#",)), "carol announced"
    # alice untouched: her long-poll went on at her cursor (every request
    # after the reload has i=), and no session was set up again for her.
    after = api.control.requests("alice")[alice_requests:]
    assert after and all(r.get("i") for r in after), after
    assert "alice: resuming" not in bridge.stderr_text()

    # A bad file, then a new token for alice (the old one revoked
    # upstream): neither reconnects.
    connects = bridge.stderr_text().count("mqtt: connected to")
    write_ini_many(ini, (("alice", TOKEN_A), ("carol", TOKEN_C)), keepalive=1)
    sighup_and_wait(bridge, 3)
    assert "config: mqtt.keepalive:" in bridge.stderr_text()
    api.control.set_broadcaster("alice", TOKEN_A2)
    write_ini_many(ini, (("alice", TOKEN_A2), ("carol", TOKEN_C)))
    sighup_and_wait(bridge, 4)
    assert "reload: alice: the new secret applies" in bridge.stderr_text()
    ids += api.control.add_events("alice", [tip("alice", "gus")])
    sub.wait_count("cb/alice/tip", 3, timeout=30)
    assert bridge.stderr_text().count("mqtt: connected to") == connects

    # mqtt.keepalive changes: one reconnect, nothing lost or twice.
    write_ini_many(ini, (("alice", TOKEN_A2), ("carol", TOKEN_C)), keepalive=30)
    sighup_and_wait(bridge, 5)
    cbtest.wait_until(lambda: bridge.stderr_text().count("mqtt: connected to") == connects + 1,
                      timeout=20, what="the reconnect")
    ids += api.control.add_events("alice", [tip("alice", "hal")])
    sub.wait_count("cb/alice/tip", 4, timeout=20)

    time.sleep(1.5)
    got = [m.json()["id"] for m in sub.messages("cb/alice/tip")]
    assert got == ids, (got, ids)
    status = [m.text for m in sub.messages("cb/bridge/status")]
    assert "offline" not in status, status
    assert bridge.stderr_text().count("mqtt: connected to") == connects + 1
    for secret in (TOKEN_A, TOKEN_A2, TOKEN_B, TOKEN_C):
        assert secret not in bridge.stderr_text()
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()
    assert "LeakSanitizer" not in bridge.stderr_text(), bridge.stderr_text()[-4000:]


def test_reload_after_a_token_was_read_again():
    """After an auth failure the bridge reads alice's token file again and
    runs with the new token (T2). A reload then compares the settings with
    what runs: the file still holding T2 is a new secret against the start's
    T1 (her re-read session goes, and nothing may log with its token after
    it is freed); T1 written back is a new secret against the T2 she runs
    with, not "untouched"."""
    rig = Rig((("alice", TOKEN_A),), topics=("cb/alice/tip",))
    ini, api, sub = rig.ini, rig.api, rig.sub
    token_file = os.path.join(rig.conf, "alice.token")

    def write_token(tok):
        with open(token_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(tok + "\n")
        os.replace(token_file + ".tmp", token_file)

    write_token(TOKEN_A)
    with open(ini, "w", encoding="utf-8") as f:
        f.write("[events]\nauth_retry_interval = 10\n\n[broadcaster:alice]\ntoken_file = %s\n"
                % token_file)
    bridge = rig.start()

    ids = api.control.add_events("alice", [tip("alice", "dan")])
    sub.wait_count("cb/alice/tip", 1, timeout=20)
    # Revoked upstream, the new token in the file: re-read after 10 s.
    api.control.set_broadcaster("alice", TOKEN_A2)
    write_token(TOKEN_A2)
    cbtest.wait_until(lambda: "changed; trying the new secret" in bridge.stderr_text(),
                      timeout=40, what="the token file read again")
    ids += api.control.add_events("alice", [tip("alice", "eve")])
    sub.wait_count("cb/alice/tip", 2, timeout=20)

    sighup_and_wait(bridge, 1)
    assert "0 broadcaster(s) untouched, 0 added, 0 removed, 1 with a new secret" in \
        bridge.stderr_text(), bridge.stderr_text()[-3000:]
    ids += api.control.add_events("alice", [tip("alice", "fay")])
    sub.wait_count("cb/alice/tip", 3, timeout=20)

    # T1 back in the file and upstream: she runs with T2, so it is new.
    api.control.set_broadcaster("alice", TOKEN_A)
    write_token(TOKEN_A)
    sighup_and_wait(bridge, 2)
    seen = len(api.control.requests("alice"))
    assert bridge.stderr_text().count("1 with a new secret") == 2, bridge.stderr_text()[-3000:]
    ids += api.control.add_events("alice", [tip("alice", "gus")])
    sub.wait_count("cb/alice/tip", 4, timeout=5)  # well before another auth retry (10 s)
    # The reload switched her to T1 at once: no 401 after it, no re-read.
    after = api.control.requests("alice")[seen:]
    assert after and all(r.get("status") != 401 for r in after), after
    assert bridge.stderr_text().count("changed; trying the new secret") == 1

    got = [m.json()["id"] for m in sub.messages("cb/alice/tip")]
    assert got == ids, (got, ids)
    for secret in (TOKEN_A, TOKEN_A2):
        assert secret not in bridge.stderr_text()
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()
    assert "AddressSanitizer" not in bridge.stderr_text(), bridge.stderr_text()[-4000:]


def test_base_topic_moves():
    """mqtt.base_topic changed: a reconnect under the new base. The old
    tree (every retained topic under cb/) is cleared, the new one is
    published, Home Assistant's config points at it, and events queued or
    new go out under it, each once."""
    rig = Rig((("alice", TOKEN_A),), topics=("cb/#", "home/cb/#"),
              drop=("CB2MQTT_HOMEASSISTANT_DISCOVERY",))
    write_ini_many(rig.ini, (("alice", TOKEN_A),))
    bridge = rig.start()
    ids = rig.api.control.add_events("alice", [tip("alice", "dan"),
                                               event("roomSubjectChange", subject="hi")])
    rig.sub.wait_count("cb/alice/tip", 1, timeout=20)
    cbtest.wait_until(lambda: {"cb/alice/state/subject", "cb/bridge/status", "cb/alice/health"}
                      <= set(retained_now(rig.broker, settle=0.5)), timeout=20,
                      what="the retained tree under cb/")

    write_ini_many(rig.ini, (("alice", TOKEN_A),), base="home/cb")
    sighup_and_wait(bridge, 1)
    assert "topics now under home/cb" in bridge.stderr_text(), bridge.stderr_text()[-3000:]
    ids2 = rig.api.control.add_events("alice", [tip("alice", "eve")])
    rig.sub.wait_count("home/cb/alice/tip", 1, timeout=20)

    def tree():
        return retained_now(rig.broker, topics=("cb/#", "home/cb/#", "homeassistant/#"),
                            settle=0.5)
    cbtest.wait_until(lambda: not [t for t in tree() if t.startswith("cb/")]
                      and tree().get("home/cb/bridge/status")
                      and tree()["home/cb/bridge/status"].text == "online"
                      and tree().get("home/cb/alice/state/subject"),
                      timeout=20, what="the old tree gone, the new one there:\n%s" % tree().keys())
    config = tree()["homeassistant/device/cb2mqtt_alice/config"].json()
    assert "home/cb/alice/availability" in json.dumps(config) and \
        '"cb/alice/' not in json.dumps(config), config
    old = [m.json()["id"] for m in rig.sub.messages("cb/alice/tip")]
    new = [m.json()["id"] for m in rig.sub.messages("home/cb/alice/tip")]
    assert old == ids[:1] and new == ids2, (old, new)
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()


def test_hundred_reloads_leak_nothing():
    """100 reloads in a row: bad files, broadcasters added and removed,
    reconnects; the bridge is built with ASan (leak detection on at exit):
    exit 0 means nothing leaked."""
    rig = Rig((("alice", TOKEN_A), ("bob", TOKEN_B)), topics=())
    ini = rig.ini
    write_ini(ini)
    bridge = rig.start()
    cbtest.wait_until(lambda: "mqtt: connected to" in bridge.stderr_text(), timeout=10,
                      what="the connect")
    # In turn: a bad file, bob added, bob removed, mqtt.keepalive changed
    # (a reconnect), back.
    for n in range(1, 101):
        step = n % 4
        if step == 1:
            write_ini(ini, qos="7")
        elif step == 2:
            write_ini_many(ini, (("alice", TOKEN_A), ("bob", TOKEN_B)))
        elif step == 3:
            write_ini_many(ini, (("alice", TOKEN_A),), keepalive=30)
        else:
            write_ini(ini)
        sighup_and_wait(bridge, n)
    assert bridge.stderr_text().count("reload: bob added") == 25
    write_ini(ini, level="debug")
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: "reload: log settings applied (level debug" in
                      bridge.stderr_text(), timeout=10, what="the last reload")
    assert bridge.alive(), bridge.describe()
    bridge.stop(timeout=20)
    assert bridge.returncode == 0, bridge.describe()
    assert "LeakSanitizer" not in bridge.stderr_text(), bridge.stderr_text()[-4000:]


if __name__ == "__main__":
    cbtest.run([test_sighup_bad_file_then_log_level, test_sighup_add_remove_change_reconnect,
                test_reload_after_a_token_was_read_again, test_base_topic_moves,
                test_hundred_reloads_leak_nothing])
