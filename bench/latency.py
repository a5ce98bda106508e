#!/usr/bin/env python3
"""cb2mqtt latency (figures, never pass/fail; SPEC section 6): from the
moment the fake Events API makes an event available to the moment a QoS 1
subscriber receives it, p50 / p99 / max, at a steady rate (default 100 and
1000 events/s) with 1 and with N broadcasters (default 1000; the rate is
spread round-robin across them). Beside each rate, in the same run and
through the same broker: mosquitto_pub -> subscriber at that rate.

    python3 bench/latency.py --bridge build-rel/src/bridge/cb2mqtt
        [--rates 100,1000] [--broadcasters 1,1000] [--seconds 12]
        [--rate-limit 2000/60] [--wakeup all|per-broadcaster]

How the two ends are timed, on one clock (time.time(), one machine):
- the fake API runs in this process; a feeder thread appends one
  chatMessage per slot of the rate, its text carrying time.time() read just
  before add_events() makes it available (so the figure includes the
  append, never less than the true delay);
- mosquitto_sub -F '%U %t %p' stamps each message as it is received; the
  bridge publishes the normalized payload, whose message.text is the
  upstream text unchanged.
At the end, GET /metrics of the bridge gives its own
cb2mqtt_event_delivery_seconds histogram (fetched -> acknowledged).

Each bridge setting also prints where the time went: available -> the
fake API's long-poll took the batch -> it wrote the answer -> subscriber.
--slow-ms N lists when the slower deliveries were made available (a timer
in the bridge's loop shows as a period). The bridge's state_dir is a temp
dir: TMPDIR=/dev/shm puts it on tmpfs (fsync then costs nothing).

--wakeup: the fake API wakes every waiting long-poll on each new event
(one Condition for all); with 1000 broadcasters that is 1000 Python thread
wake-ups per event, which measures the fake API, not the bridge.
"per-broadcaster" (the default here) wakes only that broadcaster's poll
(a subclass below, no change to fake_api.py); "all" shows the difference.
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import bench_bridge  # noqa: E402
import cbtest  # noqa: E402
import fake_api  # noqa: E402

STAMP = "lat "   # message text: "lat <seq> <time.time()>"


class PerBroadcasterWakeApi(fake_api.FakeApi):
    """FakeApi whose long-polls wait on one Condition per broadcaster (all
    on the same lock), so a new event wakes only its broadcaster's poll."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._wake = {n: threading.Condition(lock) for n in self._bc}
        self.served = []   # (time.time(), items) as each long-poll takes its batch


    def add_events(self, name, events):
        with self._cond:
            ids = super().add_events(name, events)
            self._wake[name].notify_all()
        return ids

    def _collect(self, name, cursor, hold_s):
        deadline = time.monotonic() + hold_s
        with self._cond:   # an RLock: the parent's _collect re-enters it
            while True:
                items, keys = super()._collect(name, cursor, 0)
                left = deadline - time.monotonic()
                if items or left <= 0 or self._stopping:
                    if items:
                        self.served.append((time.time(), items))
                        _TAKEN.items = items
                    return items, keys
                self._wake[name].wait(left)


_TAKEN = threading.local()   # the batch a handler thread took, until it is written
WRITTEN = []                 # (time.time() after the answer's last send, items)
_orig_send = fake_api._Handler._send


def _timed_send(self, *a, **kw):
    _orig_send(self, *a, **kw)
    items = getattr(_TAKEN, "items", None)
    if items:
        WRITTEN.append((time.time(), items))
        _TAKEN.items = None


fake_api._Handler._send = _timed_send


def percentiles(values):
    v = sorted(values)
    if not v:
        return None
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return {"n": len(v), "p50": pick(0.50), "p99": pick(0.99), "max": v[-1]}


def fmt(st):
    if st is None:
        return "no samples"
    return "p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)" % (
        1e3 * st["p50"], 1e3 * st["p99"], 1e3 * st["max"], st["n"])


SLOW_S = []    # [seconds] when --slow-ms is given
NODELAY = []    # ["--nodelay"] for mosquitto_sub / mosquitto_pub when --nodelay


def start_sub(broker, topics, out_path):
    argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
            "-F", "%U %t %p"] + NODELAY
    for t in topics:
        argv += ["-t", t]
    return subprocess.Popen(argv, stdout=open(out_path, "wb"))


def read_delays(out_path, prefix):
    """{seq: delay_s} for the lines of topics starting with prefix."""
    got = {}
    DUPES[0] = 0
    with open(out_path, "rb") as f:
        for line in f:
            parts = line.decode("utf-8", "replace").rstrip("\n").split(" ", 2)
            if len(parts) != 3 or not parts[1].startswith(prefix):
                continue
            t_recv, payload = float(parts[0]), parts[2]
            if payload.startswith("{"):
                payload = json.loads(payload).get("message", {}).get("text", "")
            if not payload.startswith(STAMP):
                continue
            seq, t_sent = payload[len(STAMP):].split()
            if int(seq) in got:
                DUPES[0] += 1
            got.setdefault(int(seq), t_recv - float(t_sent))
            SENT_AT[int(seq)] = float(t_sent)
    return got


DUPES = [0]    # messages the subscriber received more than once (last read)
SENT_AT = {}   # seq -> when it was made available (the last run read)


def slow_times(got, slow_s):
    """When (s after the first event) the deliveries slower than slow_s were
    made available: a periodic pattern points at a timer in the loop."""
    t0 = min(SENT_AT.values()) if SENT_AT else 0.0
    return sorted("%.2f" % (SENT_AT[q] - t0) for q, d in got.items() if d > slow_s)


def steady(rate, seconds, emit):
    """Calls emit(seq) at a steady rate; returns (sent, worst lateness s)."""
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05
    worst = 0.0
    for seq in range(n):
        due = t0 + seq / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            worst = max(worst, now - due)
        emit(seq)
    return n, worst


def scrape_histogram(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
    rows = []
    for line in body.decode().splitlines():
        if line.startswith("cb2mqtt_event_delivery_seconds"):
            rows.append(line)
    return rows


def run_bridge(bridge, broker, count, rate, seconds, rate_limit, wakeup, nodelay):
    names = ["b%04d" % i for i in range(count)]
    cls = PerBroadcasterWakeApi if wakeup == "per-broadcaster" else fake_api.FakeApi
    api = cls({n: "tok-" + n for n in names}, max_wait=10, batch_size=1000).start()
    if nodelay:
        # http.server writes the headers and the body in two sends: with
        # Nagle the body waits for the client's delayed ACK (40 ms on
        # Linux). Accepted sockets inherit TCP_NODELAY from the listener.
        api._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    state = tempfile.mkdtemp(prefix="bench-lat-")
    out = os.path.join(state, "sub.txt")
    sub = start_sub(broker, ["cb/+/chat_message"], out)
    mport = cbtest.free_port()
    env = bench_bridge.bridge_env(broker, api, state, names, 1, {
        "CB2MQTT_EVENTS_TIMEOUT": "10", "CB2MQTT_EVENTS_RATE_LIMIT": rate_limit,
        "CB2MQTT_EVENTS_PUBLISH": "chat_message",
        "CB2MQTT_METRICS_LISTEN": "127.0.0.1:%d" % mport})
    p = subprocess.Popen([bridge], env=env, stderr=subprocess.DEVNULL)
    try:
        # Every broadcaster's first long-poll pending before the clock starts.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(b.requests == 0 for b in api._bc.values()):
            time.sleep(0.1)
        time.sleep(1.0)

        def emit(seq):
            name = names[seq % count]
            ev = {"method": "chatMessage", "object": {
                "broadcaster": name,
                "user": fake_api.make_user(api._rng, "u%d" % (seq % 97), name),
                "message": {"message": "%s%d %.6f" % (STAMP, seq, time.time()),
                            "color": "", "bgColor": None, "font": "default"}}}
            api.add_events(name, [ev])

        c0 = bench_bridge.cpu_seconds(p.pid)
        sent, late = steady(rate, seconds, emit)
        time.sleep(2.0)
        cpu = bench_bridge.cpu_seconds(p.pid) - c0
        hist = scrape_histogram(mport)
    finally:
        p.terminate()
        p.wait(20)
        sub.terminate()
        sub.wait(5)
        api.stop()
    got = read_delays(out, "cb/")
    # Where the time goes: available -> the fake API's long-poll thread has
    # woken and taken the batch (the fake API's part, Python), and from
    # there to the subscriber (HTTP answer, curl, the bridge, the broker).
    def split(marks):
        part, rest = [], []
        for t_mark, items in marks:
            for it in items:
                seq, t_sent = it["object"]["message"]["message"][len(STAMP):].split()
                part.append(t_mark - float(t_sent))
                if int(seq) in got:
                    rest.append(got[int(seq)] - part[-1])
        return percentiles(part), percentiles(rest)

    taken, after_taken = split(getattr(api, "served", ()))
    written, after_written = split(WRITTEN)
    del WRITTEN[:]
    dupes = DUPES[0]
    slow = slow_times(got, SLOW_S[0]) if SLOW_S else []
    return {"dupes": dupes, "slow": slow, "sent": sent, "got": len(got), "stats": percentiles(got.values()),
            "api_part": taken, "rest": after_taken, "written": written,
            "after_written": after_written,
            "feeder_late": late, "cpu": cpu, "hist": hist}


def run_reference(broker, rate, seconds):
    state = tempfile.mkdtemp(prefix="bench-lat-ref-")
    out = os.path.join(state, "sub.txt")
    sub = start_sub(broker, ["ref/lat"], out)
    time.sleep(0.5)
    pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                            "-t", "ref/lat", "-l"] + NODELAY, stdin=subprocess.PIPE)

    def emit(seq):
        pub.stdin.write(("%s%d %.6f\n" % (STAMP, seq, time.time())).encode())
        pub.stdin.flush()

    sent, late = steady(rate, seconds, emit)
    time.sleep(2.0)
    pub.stdin.close()
    pub.wait(10)
    sub.terminate()
    sub.wait(5)
    got = read_delays(out, "ref/")
    dupes = DUPES[0]
    slow = slow_times(got, SLOW_S[0]) if SLOW_S else []
    return {"dupes": dupes, "slow": slow, "sent": sent, "got": len(got), "stats": percentiles(got.values()), "feeder_late": late}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridge", required=True)
    ap.add_argument("--rates", default="100,1000")
    ap.add_argument("--broadcasters", default="1,1000")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--rate-limit", default="2000/60",
                    help="events.rate_limit of the bridge (the API's limit is the default)")
    ap.add_argument("--wakeup", choices=("per-broadcaster", "all"), default="per-broadcaster")
    ap.add_argument("--switch-interval", type=float, default=0.0005,
                    help="sys.setswitchinterval for this process (fake API threads; 0.005 "
                         "is Python's default, which delays a woken long-poll by up to 5 ms)")
    ap.add_argument("--nodelay", choices=("on", "off"), default="on",
                    help="TCP_NODELAY on the bench's side: the fake API's sockets, the broker "
                         "(set_tcp_nodelay), mosquitto_sub and mosquitto_pub")
    ap.add_argument("--slow-ms", type=float,
                    help="also list when the deliveries slower than this were made available")
    a = ap.parse_args()
    if a.slow_ms is not None:
        SLOW_S.append(a.slow_ms / 1e3)
    nodelay = a.nodelay == "on"
    if nodelay:
        NODELAY.append("--nodelay")
    sys.setswitchinterval(a.switch_interval)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conf = ("max_queued_messages 0",) + (("set_tcp_nodelay true",) if nodelay else ())
    broker = cbtest.Mosquitto(extra_conf=conf).start()
    print("latency, QoS 1, %g s per setting, rate_limit %s, fake API wake-up %s, "
          "switch interval %g s, bench-side TCP_NODELAY %s"
          % (a.seconds, a.rate_limit, a.wakeup, a.switch_interval, a.nodelay))
    try:
        for rate in [int(x) for x in a.rates.split(",")]:
            ref = run_reference(broker, rate, a.seconds)
            print("%5d ev/s  mosquitto_pub -> sub         : %s; %d/%d received; feeder late "
                  "max %.1f ms" % (rate, fmt(ref["stats"]), ref["got"], ref["sent"],
                                   1e3 * ref["feeder_late"]))
            for count in [int(x) for x in a.broadcasters.split(",")]:
                r = run_bridge(a.bridge, broker, count, rate, a.seconds, a.rate_limit, a.wakeup, nodelay)
                print("%5d ev/s  %4d broadcaster(s) API -> sub: %s; %d/%d received, %d twice; "
                      "bridge cpu %.2f s; feeder late max %.1f ms"
                      % (rate, count, fmt(r["stats"]), r["got"], r["sent"], r["dupes"], r["cpu"],
                         1e3 * r["feeder_late"]))
                if r["api_part"]:
                    print("      split: available -> fake API took it: %s; -> subscriber: %s"
                          % (fmt(r["api_part"]), fmt(r["rest"])))
                    print("      split: available -> fake API wrote the answer: %s; -> subscriber: %s"
                          % (fmt(r["written"]), fmt(r["after_written"])))
                if r["slow"]:
                    print("      slower than %g ms, made available at (s): %s"
                          % (a.slow_ms, " ".join(r["slow"][:200])))
                print("      bridge histogram: " + "; ".join(
                    h.replace("cb2mqtt_event_delivery_seconds", "") for h in r["hist"]
                    if "le=" not in h or not h.endswith(" 0")))
                sys.stdout.flush()
    finally:
        broker.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        cbtest._cleanup_all()
