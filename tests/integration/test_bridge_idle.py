#!/usr/bin/env python3
"""cb2mqtt does not spin while it waits: CPU time of the process while the
broker is away, and while 50 broadcasters have long-polls pending. A busy
loop burns a whole core; the bounds are loose so sanitizer and valgrind
builds on a busy machine pass."""

import os
import time

import cbtest

MAX_CPU_SHARE = 0.25  # of one core; a spinning loop is at 1.0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(proc, seconds):
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    assert proc.alive(), proc.describe()
    return (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)


def test_broker_away_no_busy_loop():
    broker = cbtest.Mosquitto()  # never started: connection refused
    api = cbtest.fake_api({"alice": "tok-a"}, max_wait=1.0)
    bridge = cbtest.start_bridge(cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir(),
                                                   [("alice", "tok-a")],
                                                   {"CB2MQTT_LOG_LEVEL": "info"}))
    cbtest.wait_until(lambda: "cannot connect" in bridge.stderr_text(), 20,
                      what="a failed connect in the log")
    share = cpu_share(bridge, 3.0)
    assert share < MAX_CPU_SHARE, "cb2mqtt used %.0f%% CPU with the broker away" % (100 * share)


def test_pending_long_polls_no_busy_loop():
    names = [("b%02d" % i, "tok-%d" % i) for i in range(50)]
    api = cbtest.fake_api(dict(names), max_wait=30.0)
    with cbtest.Mosquitto() as broker:
        env = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir(), names,
                                {"CB2MQTT_EVENTS_TIMEOUT": "30", "CB2MQTT_LOG_LEVEL": "info"})
        bridge = cbtest.start_bridge(env)
        cbtest.wait_until(lambda: len({r.get("broadcaster") for r in api.event_requests()}) == 50,
                          30, what="a request of every broadcaster")
        time.sleep(1.0)
        share = cpu_share(bridge, 3.0)
        assert share < MAX_CPU_SHARE, "cb2mqtt used %.0f%% CPU with 50 long-polls pending" % (
            100 * share)
        assert bridge.stop() == 0, bridge.describe()


if __name__ == "__main__":
    cbtest.run([test_broker_away_no_busy_loop, test_pending_long_polls_no_busy_loop])
