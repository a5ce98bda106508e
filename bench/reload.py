#!/usr/bin/env python3
"""cb2mqtt SIGHUP reload at scale (figures, never pass/fail; exits 1 only
when a reload did not finish): one bridge with N broadcasters (default
1000) from an INI file, on the fake API and a local mosquitto. Each case
rewrites the file and sends SIGHUP; the time is the bridge's own, from its
"reload: reading the settings" log line to its "reload: done" line (both
stamped in ms). Cases: nothing changed; 1 added + 1 removed; 100 added +
100 removed; every token changed; mqtt.keepalive changed (a reconnect).
Then --more reloads (default 300; 1 added + 1 removed, and back) with
Private_Dirty every 50: a leak would grow it at every step.

    python3 bench/reload.py --bridge build-rel/src/bridge/cb2mqtt [--broadcasters 1000]
        [--more 300]

Build the bridge in Release without sanitizers.
"""

import argparse
import datetime
import os
import resource
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import bench_bridge  # noqa: E402
import cbtest  # noqa: E402


def write_ini(path, names, keepalive=60, suffix=""):
    parts = ["[mqtt]\nkeepalive = %d\n\n[log]\nlevel = info\n" % keepalive]
    parts += ["[broadcaster:%s]\ntoken = tok-%s%s\n" % (n, n, suffix) for n in names]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    os.replace(path + ".tmp", path)


def stamp(line):
    ts = line.split(" ", 1)[0]
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def reload_ms(bridge, ini, names, n, **kw):
    """Rewrites ini, sends SIGHUP (the n-th), returns the bridge's own time."""
    write_ini(ini, names, **kw)
    bridge.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: bridge.stderr_text().count("reload: done") +
                      bridge.stderr_text().count("the running settings stay") >= n,
                      timeout=120, what="reload %d" % n)
    lines = bridge.stderr_text().splitlines()
    start = [l for l in lines if "reload: reading the settings" in l][n - 1]
    done = [l for l in lines if "reload: done" in l or "the running settings stay" in l][n - 1]
    if "the running settings stay" in done:
        sys.exit("reload %d refused: %s" % (n, done))
    return (stamp(done) - stamp(start)) * 1000.0, done.split("reload: done; ", 1)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridge", required=True)
    ap.add_argument("--broadcasters", type=int, default=1000)
    ap.add_argument("--more", type=int, default=300)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ["CB2MQTT"] = os.path.abspath(a.bridge)

    n = a.broadcasters
    names = ["b%04d" % i for i in range(n)]
    extra = ["x%04d" % i for i in range(200)]
    broker = cbtest.Mosquitto().start()
    args = ["--max-wait", "10"]
    for b in names + extra:
        args += ["--broadcaster", "%s:tok-%s" % (b, b)]
    api = cbtest.FakeApiProcess(args, timeout=120)
    state_dir = tempfile.mkdtemp(prefix="cb2m-reload-")
    ini = os.path.join(state_dir, "cb2mqtt.ini")
    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, ())
    for k in ("CB2MQTT_BROADCASTERS", "CB2MQTT_LOG_LEVEL", "CB2MQTT_EVENTS_TIMEOUT"):
        env.pop(k, None)
    env["CB2MQTT_EVENTS_TIMEOUT"] = "10"
    write_ini(ini, names)
    bridge = cbtest.start_bridge(env, args=("-c", ini))
    try:
        cbtest.wait_until(lambda: bridge.stderr_text().count("polling the Events API") >= n,
                          timeout=120, what="every broadcaster polling")
        k = 0
        rows = []
        cases = [
            ("nothing changed", names, {}),
            ("1 added, 1 removed", names[1:] + extra[:1], {}),
            ("100 added, 100 removed", names[101:] + extra[:101], {}),
            ("every token changed", names[101:] + extra[:101], {"suffix": "-v2"}),
            ("mqtt.keepalive changed (reconnect)", names[101:] + extra[:101],
             {"suffix": "-v2", "keepalive": 30}),
        ]
        for title, ns, kw in cases:
            k += 1
            ms, what = reload_ms(bridge, ini, ns, k, **kw)
            rows.append((title, ms, what))
        dirty = [bench_bridge.smaps(bridge.pid)["Private_Dirty"]]
        for i in range(a.more):
            k += 1
            ns = names if i % 2 == 0 else names[1:] + extra[:1]
            reload_ms(bridge, ini, ns, k)
            if (i + 1) % 50 == 0:
                dirty.append(bench_bridge.smaps(bridge.pid)["Private_Dirty"])
        print("reload with %d broadcasters (the bridge's own time, SIGHUP log line to done):" % n)
        for title, ms, what in rows:
            print("  %-36s %8.1f ms   (%s)" % (title, ms, what))
        print("Private_Dirty (KiB) every 50 of %d more reloads (1 added + 1 removed, back):"
              % a.more, " ".join(str(d) for d in dirty))
        bridge.stop(timeout=30)
    finally:
        if bridge.alive():
            bridge.stop()
        api.stop()
        broker.stop()


if __name__ == "__main__":
    main()
