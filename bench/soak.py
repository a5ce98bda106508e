#!/usr/bin/env python3
"""cb2mqtt soak (a figure, never pass/fail by itself): N events (default one
million) of all 12 types through fake API -> cb2mqtt -> local mosquitto ->
a subscriber, with the bridge's memory sampled every second. Prints RSS and
Private_Dirty at the start (after a warm-up), at the end and the peak, and
exits 1 when the end is more than --margin-kib above the start.

    python3 bench/soak.py --bridge build-rel/src/bridge/cb2mqtt
        [--events 1000000] [--qos 1] [--warmup 50000] [--margin-kib 512]

The fake API here serves events made on the fly (a pool of realistic
objects with fresh ids), so its own memory stays flat too. Build the bridge
in Release without sanitizers.
"""

import argparse
import os
import random
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
import fake_api  # noqa: E402

BASE_MS = 1755376889000
PER_MS = 100  # ids: (BASE_MS + i // PER_MS, i % PER_MS) for event i = 0..N-1


class StreamingApi(fake_api.FakeApi):
    """The fake API with one broadcaster whose stream is events 0..total-1,
    made when asked for instead of stored."""

    def __init__(self, name, token, total, pool_size=1200, **kw):
        super().__init__({name: token}, **kw)
        rng = random.Random(7)
        methods = fake_api.METHODS
        self.pool = [(methods[i % len(methods)],
                      fake_api.make_object(rng, methods[i % len(methods)], name))
                     for i in range(pool_size)]
        self.total = total
        self.served = 0  # highest index + 1 handed out so far

    def _collect(self, name, cursor, hold_s):
        start = 0
        if cursor is not None:
            start = (cursor[0] - BASE_MS) * PER_MS + cursor[1] + 1
        start = max(0, start)
        if start >= self.total:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, hold_s)
            return [], []
        end = min(self.total, start + max(1, self.batch_size))
        items, keys = [], []
        for i in range(start, end):
            key = (BASE_MS + i // PER_MS, i % PER_MS)
            method, obj = self.pool[i % len(self.pool)]
            items.append({"id": fake_api.format_id(key), "method": method, "object": obj})
            keys.append(key)
        self.served = max(self.served, end)
        return items, keys

    def _record(self, rec):
        # The request log would grow by one entry per batch forever: keep a count.
        with self._cond:
            b = self._bc.get(rec.get("broadcaster"))
            if b is not None:
                b.requests += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridge", required=True)
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=50000)
    ap.add_argument("--margin-kib", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=3600)
    a = ap.parse_args()

    name = "soak"
    # mosquitto drops messages beyond 1000 queued for a slow subscriber by
    # default; the subscriber must see every event here.
    broker = cbtest.Mosquitto(extra_conf=("max_queued_messages 0",)).start()
    api = StreamingApi(name, "tok-" + name, a.events, batch_size=1000, max_wait=1.0).start()
    types = sorted(set(cbtest.EVENT_TYPES.values()))
    argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", str(a.qos),
            "-F", "%t", "-i", "soak-sub"]
    for t in types:
        argv += ["-t", "cb/%s/%s" % (name, t)]
    sub = subprocess.Popen(argv, stdout=subprocess.PIPE, bufsize=1 << 16)
    got = [0]
    done = threading.Event()

    def count():
        for _ in sub.stdout:
            got[0] += 1
            if got[0] >= a.events:
                done.set()
    threading.Thread(target=count, daemon=True).start()
    time.sleep(0.5)
    state = tempfile.mkdtemp(prefix="soak-state-")
    t0 = time.monotonic()
    p = subprocess.Popen([a.bridge], env=bench_bridge.bridge_env(broker, api, state, [name], a.qos),
                         stderr=subprocess.DEVNULL)
    samples = []  # (t, delivered, rss KiB, private dirty KiB)
    start = None
    deadline = t0 + a.timeout
    ok = False
    while time.monotonic() < deadline:
        if p.poll() is not None:
            print("soak: the bridge exited with %s" % p.returncode)
            break
        now = time.monotonic() - t0
        rss = bench_bridge.status_kib(p.pid, "VmRSS")
        pd = bench_bridge.smaps(p.pid).get("Private_Dirty", -1)
        samples.append((now, got[0], rss, pd))
        if start is None and got[0] >= a.warmup:
            start = samples[-1]
            print("soak: start after %d events (%.0f s): RSS %d KiB, Private_Dirty %d KiB"
                  % (start[1], start[0], start[2], start[3]), flush=True)
        if len(samples) % 30 == 0:
            print("soak: %7d events delivered (%d fetched), %5.0f s, RSS %d KiB, "
                  "Private_Dirty %d KiB" % (got[0], api.served, now, rss, pd), flush=True)
        if done.wait(1.0):
            ok = True
            break
    elapsed = time.monotonic() - t0
    cpu = bench_bridge.cpu_seconds(p.pid) if p.poll() is None else -1
    end = None
    if p.poll() is None:
        end = (elapsed, got[0], bench_bridge.status_kib(p.pid, "VmRSS"),
               bench_bridge.smaps(p.pid).get("Private_Dirty", -1))
        hwm = bench_bridge.status_kib(p.pid, "VmHWM")
        p.terminate()
        p.wait(20)
    sub.kill()
    api.stop()
    broker.stop()
    if not ok or start is None or end is None:
        print("soak: did not finish (%d events fetched, %d delivered in %.0f s)"
              % (api.served, got[0], elapsed))
        return 1
    after = [s for s in samples if s[0] >= start[0]] + [end]
    peak_rss = max(s[2] for s in after)
    peak_pd = max(s[3] for s in after)
    print("soak: %d events (qos %d) delivered in %.0f s (%.0f events/s, bridge cpu %.1f s)"
          % (a.events, a.qos, elapsed, a.events / elapsed, cpu))
    print("soak: RSS start %d KiB, end %d KiB (%+d), peak after warm-up %d KiB, VmHWM %d KiB"
          % (start[2], end[2], end[2] - start[2], peak_rss, hwm))
    print("soak: Private_Dirty start %d KiB, end %d KiB (%+d), peak after warm-up %d KiB"
          % (start[3], end[3], end[3] - start[3], peak_pd))
    flat = end[2] - start[2] <= a.margin_kib and end[3] - start[3] <= a.margin_kib
    print("soak: %s (margin %d KiB)" % ("flat" if flat else "GREW", a.margin_kib))
    return 0 if flat else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cbtest._cleanup_all()
