#!/usr/bin/env python3
"""cb2mqtt end to end: SIGHUP reload (SPEC 5, Signals), with a real
mosquitto and the fake Events API.

The settings come from an INI file (-c). A SIGHUP with a bad file is
logged as `config: <section>.<key>: <reason>` and the running settings
stay: events keep flowing, none twice, and cb/bridge/status never says
offline. A SIGHUP that changes log.level applies it at once, without
touching the broadcaster (no duplicate, no second connect).
"""

import os
import signal
import time

import cbtest

TOKEN_A = "tokAlice-0123456789abcdef"

user = cbtest.api_user
event = cbtest.api_event


def write_ini(path, level="info", qos="1"):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("[mqtt]\nqos = %s\n\n[log]\nlevel = %s\n\n[broadcaster:alice]\ntoken = %s\n"
                % (qos, level, TOKEN_A))
    os.replace(path + ".tmp", path)


def test_sighup_bad_file_then_log_level():
    state_dir = cbtest.tempdir("cbtest-state-")
    ini = os.path.join(cbtest.tempdir("cbtest-conf-"), "cb2mqtt.ini")
    broker = cbtest.Mosquitto().start()
    api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster", "alice:" + TOKEN_A])
    cbtest.on_cleanup(api.stop)
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1).start()
    cbtest.on_cleanup(sub.stop)
    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, ())
    for k in ("CB2MQTT_BROADCASTERS", "CB2MQTT_LOG_LEVEL"):
        env.pop(k, None)
    write_ini(ini)
    bridge = cbtest.start_bridge(env, args=("-c", ini))

    ids = api.control.add_events("alice", [event("tip", user=user("bob"),
                                                 tip={"tokens": 5, "isAnon": False,
                                                      "message": ""})])
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

    # log.level = debug applies at once.
    write_ini(ini, level="debug")
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: "reload: log settings applied (level debug" in
                      bridge.stderr_text(), timeout=10, what="the log level applied")
    cbtest.wait_until(lambda: "reload: done; 1 broadcaster(s) untouched" in
                      bridge.stderr_text(), timeout=10, what="the reload done")
    before = len(bridge.stderr_text())
    ids += api.control.add_events("alice", [event("unfollow", user=user("carol"))])
    sub.wait_for(lambda m: m.topic == "cb/alice/unfollow", timeout=20, what="an unfollow")
    cbtest.wait_until(lambda: "debug" in bridge.stderr_text()[before:].lower(), timeout=10,
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


def test_hundred_reloads_leak_nothing():
    """100 reloads in a row, good and bad files in turn; the bridge is built
    with ASan (leak detection on at exit): exit 0 means nothing leaked."""
    state_dir = cbtest.tempdir("cbtest-state-")
    ini = os.path.join(cbtest.tempdir("cbtest-conf-"), "cb2mqtt.ini")
    broker = cbtest.Mosquitto().start()
    api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster", "alice:" + TOKEN_A])
    cbtest.on_cleanup(api.stop)
    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, ())
    for k in ("CB2MQTT_BROADCASTERS", "CB2MQTT_LOG_LEVEL"):
        env.pop(k, None)
    write_ini(ini)
    bridge = cbtest.start_bridge(env, args=("-c", ini))
    cbtest.wait_until(lambda: "mqtt: connected to" in bridge.stderr_text(), timeout=10,
                      what="the connect")
    for n in range(1, 101):
        write_ini(ini, qos="7" if n % 2 else "1")
        bridge.send_signal(signal.SIGHUP)
        cbtest.wait_until(lambda: bridge.stderr_text().count("reload: reading the settings") >= n
                          and (bridge.stderr_text().count("the running settings stay")
                               + bridge.stderr_text().count("reload: done")) >= n,
                          timeout=10, what="reload %d" % n)
    write_ini(ini, level="debug")
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: "reload: log settings applied (level debug" in
                      bridge.stderr_text(), timeout=10, what="the last reload")
    assert bridge.alive(), bridge.describe()
    bridge.stop(timeout=20)
    assert bridge.returncode == 0, bridge.describe()
    assert "LeakSanitizer" not in bridge.stderr_text(), bridge.stderr_text()[-4000:]


if __name__ == "__main__":
    cbtest.run([test_sighup_bad_file_then_log_level, test_hundred_reloads_leak_nothing])
