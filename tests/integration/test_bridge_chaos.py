#!/usr/bin/env python3
"""cb2mqtt under chaos: a faulty API, broker restarts and bridge SIGKILLs.

One run: the fake API (its own process) answers a share of event requests
with random faults (429 with Retry-After, 5xx, 52x, connection resets,
garbage, slow answers); events for two broadcasters are produced while the
bridge runs; meanwhile the broker (with persistence) is restarted and the
bridge is SIGKILLed and started again, at evenly spread moments. A
persistent-session subscriber (mosquitto_sub -c, QoS 1) records every
message. At the end the figures are printed and checked:

- lost: produced ids never delivered (must be 0);
- duplicated: deliveries beyond the first of an id, bounded by what could be
  unconfirmed at each disruption (per kill: the deliveries of the last
  cursor-save period before it plus one batch; per broker restart: the MQTT
  in-flight windows) and by 2 * max_queued per disruption;
- out of order: within a broadcaster, first deliveries not in id order (0);
- foreign: delivered ids that were never produced (0);
- no form of any token in any MQTT message or any line the bridge logged.

Hostile events are mixed into the stream (issue 15): methods that are not
a valid topic level ("", "a/b", "+", "#", 300 characters, control bytes,
"state"), which must arrive on cb/<b>/unknown, and a clean unknown method,
on its own level; they count like any other produced event. Bodies
injected as faults add events with odd ids and an id served before
(duplicate): the bridge must not stop on them.

Knobs (environment; scripts/chaos.sh runs the long version):
CHAOS_EVENTS (3000), CHAOS_BROKER_RESTARTS (2), CHAOS_KILLS (2),
CHAOS_FAULT_RATE (0.1), CHAOS_DURATION (production seconds, 25),
CHAOS_MAX_QUEUED (bridge events.max_queued, 1000), CHAOS_BATCH (API batch
size, 100), CHAOS_SEED (fault sequence, 7).
"""

import json
import os
import signal
import threading
import time

import cbtest

EVENT_TYPES = {"broadcast_start", "broadcast_stop", "room_subject_change", "user_enter",
               "user_leave", "follow", "unfollow", "fanclub_join", "chat_message",
               "private_message", "tip", "media_purchase"}
BROADCASTERS = (("alice", "chaosA-9f8e7d6c5b4a3210"), ("bob", "chaos+B~tok.4242xyz"))
# The bridge saves acknowledged cursors once a second (bridge.c); a kill can
# re-deliver what was confirmed since the last save. The window is that
# period with room for a busy machine.
SAVE_WINDOW_S = 2.5
# MQTT in-flight windows: the bridge's (mqtt.c, 256 publishes) and the
# broker's towards the subscriber (max_inflight_messages, 20).
BRIDGE_INFLIGHT = 256
BROKER_INFLIGHT = 20
# Unknown methods and the topic level each must arrive on (SPEC 3).
ODD_METHODS = {"": "unknown", "a/b": "unknown", "+": "unknown", "#": "unknown",
               "x" * 300: "unknown", "ctl\x01\x7f": "unknown", "state": "unknown",
               "na\u00efve": "unknown", "chaosThing": "chaos_thing"}
OWN_TOPICS = {"state", "availability", "health"}


def knob(name, default, kind=int):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit("%s=%r is not a %s" % (name, raw, kind.__name__))
    if value < 0:
        raise SystemExit("%s must not be negative" % name)
    return value


class Producer(threading.Thread):
    """Appends events to both broadcasters' feeds in small chunks spread over
    `duration` seconds (HTTP calls only: processes stay on the main thread)."""

    def __init__(self, control, total, duration):
        super().__init__(daemon=True)
        self.control = control
        self.total = total
        self.duration = max(duration, 0.5)
        self.ids = {name: [] for name, _ in BROADCASTERS}
        self.error = None
        self.odd_levels = {}  # hostile events among the produced ones: id -> level
        self.done = threading.Event()

    def run(self):
        try:
            names = [n for n, _ in BROADCASTERS]
            ticks = max(1, int(self.duration / 0.2))
            made = 0
            t0 = time.monotonic()
            for tick in range(ticks):
                want = self.total * (tick + 1) // ticks
                while made < want:
                    n = min(want - made, 200)
                    # Alternate broadcasters chunk by chunk; an odd total
                    # leaves alice one more.
                    name = names[(made // 200 + tick) % len(names)]
                    self.ids[name] += self.control.generate(name, n)
                    made += n
                # Every fifth tick, hostile events for one broadcaster.
                if tick % 5 == 2:
                    name = names[(tick // 5) % len(names)]
                    evs = [{"method": m, "object": {"broadcaster": name, "tick": tick}}
                           for m in ODD_METHODS]
                    got = self.control.add_events(name, evs)
                    self.ids[name] += got
                    self.odd_levels.update(zip(got, ODD_METHODS.values()))
                    # Odd ids and an id served before, in a body of their
                    # own (nextUrl null: the cursor stays where it is).
                    seen = self.ids[name][0]
                    body = {"events": [
                        {"method": "follow", "id": "odd-%d" % tick,
                         "object": {"broadcaster": name}},
                        {"method": "follow", "id": "", "object": {"broadcaster": name}},
                        {"method": "tip", "id": seen, "object": {"broadcaster": name}}],
                        "nextUrl": None}
                    self.control.add_faults(name, [{"body": json.dumps(body)}])
                pause = t0 + (tick + 1) * self.duration / ticks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except Exception as e:  # reported by the main thread
            self.error = e
        finally:
            self.done.set()


def is_event(m):
    """An event message: cb/<b>/<level>, not a retained topic of <b>."""
    parts = m.topic.split("/")
    return (len(parts) == 3 and parts[0] == "cb" and parts[1] != "bridge"
            and parts[2] not in OWN_TOPICS and m.payload[:1] == b"{")


def analyse(produced, messages, odd_levels=None):
    """Figures from the produced ids per broadcaster and the recorded
    messages: (figures dict, first-delivery time per id). odd_levels maps
    the ids of hostile events to the topic level they must arrive on."""
    odd_levels = odd_levels or {}
    misrouted = 0
    first_time = {}
    seen_order = {name: [] for name in produced}
    delivered = duplicated = foreign = odd_ids = 0
    known = {}
    for name, ids in produced.items():
        for i in ids:
            known[i] = name
    for m in messages:
        if not is_event(m):
            continue
        parts = m.topic.split("/")
        ev_id = m.json()["id"]
        delivered += 1
        if ev_id in odd_levels:
            misrouted += odd_levels[ev_id] != parts[2]
        elif ev_id in known and parts[2] not in EVENT_TYPES:
            misrouted += 1
        if known.get(ev_id) != parts[1]:
            # Events of the injected bodies (odd ids) are not produced ones.
            if ev_id.startswith("odd-") or ev_id == "":
                odd_ids += 1
            else:
                foreign += 1
            continue
        if ev_id in first_time:
            duplicated += 1
            continue
        first_time[ev_id] = m.time
        seen_order[parts[1]].append(ev_id)
    out_of_order = 0
    for name, ids in produced.items():
        pos = {i: n for n, i in enumerate(ids)}
        got = [pos[i] for i in seen_order[name]]
        out_of_order += sum(1 for a, b in zip(got, got[1:]) if b < a)
    lost = sum(1 for ids in produced.values() for i in ids if i not in first_time)
    figures = {"produced": len(known), "delivered": delivered, "unique": len(first_time),
               "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
               "foreign": foreign, "misrouted": misrouted, "odd_ids": odd_ids}
    return figures, first_time


def test_chaos():
    events = knob("CHAOS_EVENTS", 3000)
    restarts = knob("CHAOS_BROKER_RESTARTS", 2)
    kills = knob("CHAOS_KILLS", 2)
    fault_rate = knob("CHAOS_FAULT_RATE", 0.1, float)
    duration = knob("CHAOS_DURATION", 25.0, float)
    max_queued = knob("CHAOS_MAX_QUEUED", 1000)
    batch = knob("CHAOS_BATCH", 100)
    seed = knob("CHAOS_SEED", 7)
    cbtest.bridge_program()  # skips (77) early when cb2mqtt is not built
    t_start = time.monotonic()

    broker = cbtest.Mosquitto(extra_conf=[
        "persistence true", "persistence_location %s/" % cbtest.tempdir("cbtest-mqdb-"),
        "autosave_interval 1",
        # The subscriber's queue must not overflow while it reconnects after
        # a restart (the default drops QoS 1 messages beyond 1000).
        "max_queued_messages 0"]).start()
    api_args = ["--max-wait", "1", "--batch-size", str(batch),
                "--fault-rate", str(fault_rate), "--seed", str(seed)]
    for name, tok in BROADCASTERS:
        api_args += ["--broadcaster", "%s:%s" % (name, tok)]
    api = cbtest.FakeApiProcess(api_args)
    cbtest.on_cleanup(api.stop)
    # Persistent session (-c; with MQTT 5 it never expires): what is queued
    # for it across a broker restart is kept in the broker's database.
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1, extra=["-c"]).start()
    cbtest.on_cleanup(sub.stop)

    state_dir = cbtest.tempdir("cbtest-state-")
    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, BROADCASTERS, {
        "CB2MQTT_EVENTS_MAX_QUEUED": str(max_queued),
        "CB2MQTT_LOG_LEVEL": os.environ.get("CHAOS_LOG_LEVEL", "debug"),
    })
    bridges = [cbtest.start_bridge(env, name="cb2mqtt-0")]

    producer = Producer(api.control, events, duration)
    producer.start()

    # Disruptions at evenly spread moments of the production, alternating
    # kills and restarts.
    plan = []
    k, r = kills, restarts
    while k or r:
        if k and (k >= r):
            plan.append("kill")
            k -= 1
        if r:
            plan.append("restart")
            r -= 1
    moments = [t_start + duration * (n + 1) / (len(plan) + 1) for n in range(len(plan))]
    disruptions = []  # (kind, monotonic time)

    def watch():
        sub.messages()  # stamps arrivals (times are taken when read)
        b = bridges[-1]
        assert b.alive(), "the bridge died by itself:\n" + b.describe()

    for kind, at in zip(plan, moments):
        while time.monotonic() < at:
            watch()
            time.sleep(0.05)
        watch()
        now = time.monotonic()
        if kind == "kill":
            bridges[-1].send_signal(signal.SIGKILL)
            rc = bridges[-1].wait(10)
            assert rc == -signal.SIGKILL, rc
            disruptions.append(("kill", now))
            time.sleep(0.3)
            bridges.append(cbtest.start_bridge(env, name="cb2mqtt-%d" % len(bridges)))
        else:
            disruptions.append(("restart", now))
            broker.restart(down_s=1.0)
        print("  %6.1f s: %s" % (now - t_start, kind), flush=True)

    while not producer.done.is_set():
        watch()
        time.sleep(0.05)
    assert producer.error is None, "producing events failed: %r" % producer.error
    produced = producer.ids
    want = {i for ids in produced.values() for i in ids}
    odd = len(producer.odd_levels)
    assert len(want) == events + odd, (len(want), events, odd)

    # Catch up: a generous deadline scaled by the size of the run.
    deadline = time.monotonic() + 60 + events / 200.0
    got, looked = set(), 0
    while True:
        watch()
        msgs = sub.messages()  # append-only: parse only what is new
        for m in msgs[looked:]:
            if is_event(m):
                got.add(m.json()["id"])
        looked = len(msgs)
        if want <= got:
            break
        if time.monotonic() > deadline:
            figures, _ = analyse(produced, sub.messages(), producer.odd_levels)
            raise AssertionError("not everything arrived: %r\n%s" % (
                figures, bridges[-1].describe()))
        time.sleep(0.2)
    time.sleep(1.5)  # late duplicates, if any, are counted too
    bridges[-1].send_signal(signal.SIGTERM)
    rc = bridges[-1].wait(20)
    assert rc == 0, "SIGTERM: exit %s\n%s" % (rc, bridges[-1].describe())
    time.sleep(0.5)
    messages = sub.messages()
    figures, first_time = analyse(produced, messages, producer.odd_levels)

    # What could legitimately come twice: per kill, what was confirmed in
    # the last cursor-save period before it, plus one batch; per broker
    # restart, the in-flight windows (the bridge resends unconfirmed
    # publishes, the broker redelivers unacknowledged ones).
    times = sorted(first_time.values())
    bound = 0
    bounds = []
    for kind, at in disruptions:
        if kind == "kill":
            recent = sum(1 for t in times if at - SAVE_WINDOW_S <= t <= at)
            bounds.append(recent + batch)
        else:
            bounds.append(BRIDGE_INFLIGHT + BROKER_INFLIGHT)
        bound += bounds[-1]
    # Each duplicate is put down to the last disruption before it arrived.
    per = [0] * len(disruptions)
    seen = set()
    for m in messages:
        if not is_event(m):
            continue
        ev_id = m.json()["id"]
        if ev_id not in want:
            continue
        if ev_id in seen:
            before = [n for n, (_, at) in enumerate(disruptions) if at <= m.time]
            if before:
                per[before[-1]] += 1
        seen.add(ev_id)
    static_bound = 2 * max_queued * max(1, len(disruptions))

    log_text = "".join(b.stderr_text() + b.stdout_text() for b in bridges)
    faults = sum(1 for r in api.control.requests() if r.get("fault"))
    print("  chaos: %d events, %d broadcasters, fault rate %.2f (%d faults served), "
          "%d broker restarts, %d bridge kills, %.1f s" % (
              events, len(BROADCASTERS), fault_rate, faults, restarts, kills,
              time.monotonic() - t_start))
    print("  produced %(produced)d, delivered %(delivered)d, unique %(unique)d, lost %(lost)d, "
          "duplicated %(duplicated)d, out of order %(out_of_order)d, foreign %(foreign)d, "
          "misrouted %(misrouted)d, odd-id deliveries %(odd_ids)d" % figures)
    print("  hostile events: %d (methods), each on its level" % odd)
    for (kind, at), dup, lim in zip(disruptions, per, bounds):
        print("    %-7s at %6.1f s: %4d duplicates (bound %d)" % (kind, at - t_start, dup, lim))
    print("  duplicate bound: %d (save windows, in-flight windows), %d (2 * max_queued per "
          "disruption)" % (bound, static_bound), flush=True)

    assert figures["lost"] == 0, figures
    assert figures["out_of_order"] == 0, figures
    assert figures["foreign"] == 0, figures
    assert figures["unique"] == events + odd, figures
    assert figures["misrouted"] == 0, figures
    assert odd > 0, "no hostile event was produced: the run proved nothing"
    # Events with an id that is not <ms>-<seq> are delivered (SPEC 3), not
    # dropped. Not all of them: a kill between the fetch of such a body and
    # its publish loses it, since the fake API serves an injected body once.
    assert figures["odd_ids"] > 0, ("no event with an odd id was delivered", figures)
    assert figures["duplicated"] <= bound, (figures, bound)
    assert figures["duplicated"] <= static_bound, (figures, static_bound)
    if fault_rate > 0 and events >= 1000:
        assert faults > 0, "the fake API served no fault: the run proved nothing"
    for name, tok in BROADCASTERS:
        cbtest.assert_no_secret(log_text, tok, "the bridge's log")
        cbtest.assert_no_secret_in_messages(messages, tok)
    # Every bridge that was started really ran (logged), and the last one
    # said goodbye: offline on both availability topics.
    assert all("cb2mqtt" in b.stderr_text() for b in bridges)
    tail = [m for m in messages if m.topic.endswith("/availability")][-2:]
    assert sorted((m.topic, m.text) for m in tail) == [
        ("cb/alice/availability", "offline"), ("cb/bob/availability", "offline")], tail


if __name__ == "__main__":
    cbtest.run([test_chaos])
