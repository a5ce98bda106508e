#!/usr/bin/env python3
"""cb2mqtt at scale (figures; exits 1 only when something was not delivered):
one bridge process with N broadcasters (default 1000) on the fake API over
loopback. Checks that every broadcaster was polled (the fake API counts
requests per broadcaster) and that every event of every broadcaster reached
cb/<b>/<event_type> (a subscriber on cb/+/+), then reports CPU and memory
(VmHWM = peak RSS, RSS, Private_Dirty) during delivery and while idle with
every long-poll pending, beside the same run with one broadcaster.

    python3 bench/scale.py --bridge build-rel/src/bridge/cb2mqtt
        [--broadcasters 1000] [--events-each 12] [--timeout-s 10] [--idle-s 20]

Build the bridge in Release without sanitizers. Needs about N+100 file
descriptors (raised to the hard limit here).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import bench_bridge  # noqa: E402
import cbtest  # noqa: E402


def memory(pid):
    m = bench_bridge.smaps(pid)
    return {"hwm": bench_bridge.status_kib(pid, "VmHWM"), "rss": m.get("Rss", -1),
            "private_dirty": m.get("Private_Dirty", -1), "anon": m.get("Anonymous", -1)}


def run(bridge, count, events_each, timeout_s, idle_s):
    """One bridge with count broadcasters; returns a dict of figures."""
    names = ["b%04d" % i for i in range(count)]
    types = set(cbtest.EVENT_TYPES.values())
    want = events_each * count
    broker = cbtest.Mosquitto(extra_conf=("max_queued_messages 0",)).start()
    args = ["--max-wait", str(timeout_s), "--preload", str(events_each)]
    for n in names:
        args += ["--broadcaster", "%s:tok-%s" % (n, n)]
    api = cbtest.FakeApiProcess(args, timeout=120)

    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-q", "1", "-i", "scale-sub", "-F", "%t", "-t", "cb/+/+"],
                           stdout=subprocess.PIPE, bufsize=1 << 16)
    per = {}  # broadcaster -> events seen on cb/<b>/<event_type>
    seen = [0]
    all_seen = threading.Event()

    def count_lines():
        for line in sub.stdout:
            parts = line.decode("utf-8", "replace").strip().split("/")
            if len(parts) == 3 and parts[2] in types:
                per[parts[1]] = per.get(parts[1], 0) + 1
                seen[0] += 1
                if seen[0] >= want:
                    all_seen.set()
    threading.Thread(target=count_lines, daemon=True).start()
    time.sleep(1.0)

    state = tempfile.mkdtemp(prefix="scale-state-")
    env = bench_bridge.bridge_env(broker, api, state, names, 1,
                                  {"CB2MQTT_EVENTS_TIMEOUT": str(timeout_s)})
    t0 = time.monotonic()
    p = subprocess.Popen([bridge], env=env, stderr=subprocess.DEVNULL)
    delivered = all_seen.wait(120 + count * 0.2)
    t_deliver = time.monotonic() - t0
    cpu_deliver = bench_bridge.cpu_seconds(p.pid)
    mem_deliver = memory(p.pid)
    # Idle: every broadcaster has a long-poll pending (or renews one every
    # timeout_s seconds, which is part of the idle cost).
    time.sleep(2.0)
    c0, i0 = bench_bridge.cpu_seconds(p.pid), time.monotonic()
    time.sleep(idle_s)
    c1, i1 = bench_bridge.cpu_seconds(p.pid), time.monotonic()
    mem_idle = memory(p.pid)
    stats = api.control.stats()["broadcasters"]
    p.terminate()
    rc = p.wait(60)
    sub.kill()
    api.stop()
    broker.stop()
    polled = sum(1 for n in names if stats.get(n, {}).get("requests", 0) >= 1)
    complete = sum(1 for n in names if per.get(n, 0) >= events_each)
    return {
        "count": count, "delivered": delivered, "events": seen[0], "want": want,
        "t_deliver": t_deliver, "cpu_deliver": cpu_deliver, "mem_deliver": mem_deliver,
        "idle_cpu_pct": 100.0 * (c1 - c0) / (i1 - i0), "mem_idle": mem_idle,
        "polled": polled, "complete": complete, "exit": rc,
        "requests": sum(s.get("requests", 0) for s in stats.values()),
    }


def report(r):
    md, mi = r["mem_deliver"], r["mem_idle"]
    print("%d broadcaster(s): %d/%d events on cb/<b>/<type> in %.2f s (bridge cpu %.2f s); "
          "%d/%d polled, %d/%d got every event; %d API requests; exit %s"
          % (r["count"], r["events"], r["want"], r["t_deliver"], r["cpu_deliver"],
             r["polled"], r["count"], r["complete"], r["count"], r["requests"], r["exit"]))
    print("  memory after delivery: VmHWM %d KiB, RSS %d KiB, Private_Dirty %d KiB, "
          "Anonymous %d KiB" % (md["hwm"], md["rss"], md["private_dirty"], md["anon"]))
    print("  idle (long-polls pending): CPU %.2f%%, VmHWM %d KiB, RSS %d KiB, "
          "Private_Dirty %d KiB" % (r["idle_cpu_pct"], mi["hwm"], mi["rss"],
                                    mi["private_dirty"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridge", required=True)
    ap.add_argument("--broadcasters", type=int, default=1000)
    ap.add_argument("--events-each", type=int, default=12)
    ap.add_argument("--timeout-s", type=int, default=10,
                    help="long-poll timeout (bridge events.timeout and fake API hold)")
    ap.add_argument("--idle-s", type=float, default=20)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.broadcasters * 2 + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    one = run(a.bridge, 1, a.events_each, a.timeout_s, a.idle_s)
    report(one)
    many = run(a.bridge, a.broadcasters, a.events_each, a.timeout_s, a.idle_s)
    report(many)
    extra = max(1, a.broadcasters - 1)
    for key, label in (("hwm", "VmHWM (peak RSS)"), ("private_dirty", "Private_Dirty")):
        print("per extra broadcaster: %.1f KiB %s (idle), %.1f KiB after delivery"
              % ((many["mem_idle"][key] - one["mem_idle"][key]) / extra, label,
                 (many["mem_deliver"][key] - one["mem_deliver"][key]) / extra))
    good = all(r["delivered"] and r["polled"] == r["count"] and r["complete"] == r["count"]
               for r in (one, many))
    print("scale: %s" % ("every broadcaster polled and delivered" if good else "INCOMPLETE"))
    return 0 if good else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cbtest._cleanup_all()
