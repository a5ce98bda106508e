#!/usr/bin/env python3
"""cb2mqtt's delivery rules (SPEC 5 Delivery, issues 12 and 15), with real
processes: a mosquitto with a password file and an ACL, the fake API, the
bridge.

- A publish the broker refuses (ACL deny: PUBACK 0x87) is logged with its
  topic and reason code, holds the events of its broadcaster behind it
  while the others flow, and is re-sent with backoff while connected:
  once the ACL allows it (mosquitto re-reads it on SIGHUP) it arrives,
  followed by the events behind it, in order, without a reconnect.
- After a broker outage the broadcasters are served in turn: a second
  broadcaster's backlog is not delivered behind all of the first's.
"""

import os
import re
import signal
import time

import cbtest

TOKENS = (("alice", "deliveryTokA-1a2b3c4d"), ("bob", "deliveryTokB-5e6f7a8b"))
ACL_DENY = """user cb
topic deny cb/alice/tip
topic readwrite cb/#
topic readwrite homeassistant/#

user sub
topic read cb/#
topic readwrite cbtest/#
"""


def event_msgs(sub, name):
    """Event messages of broadcaster name, in arrival order (JSON with id)."""
    out = []
    for m in sub.messages():
        parts = m.topic.split("/")
        if len(parts) == 3 and parts[1] == name and parts[2] not in (
                "state", "availability", "health"):
            out.append((parts[2], m.json()["id"]))
    return out


def test_refused_publish_is_resent_after_acl_fix():
    d = cbtest.tempdir("cbtest-acl-")
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write(ACL_DENY)
    broker = cbtest.Mosquitto(users={"cb": "cb-pw-1", "sub": "sub-pw-2"},
                              extra_conf=["acl_file %s" % acl]).start()
    cbtest.on_cleanup(broker.stop)
    api_args = ["--max-wait", "1"]
    for name, tok in TOKENS:
        api_args += ["--broadcaster", "%s:%s" % (name, tok)]
    api = cbtest.FakeApiProcess(api_args)
    cbtest.on_cleanup(api.stop)
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1, user="sub",
                            password="sub-pw-2").start()
    cbtest.on_cleanup(sub.stop)
    env = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir("cbtest-state-"), TOKENS, {
        "CB2MQTT_MQTT_USERNAME": "cb", "CB2MQTT_MQTT_PASSWORD": "cb-pw-1",
        "CB2MQTT_MQTT_CLIENT_ID": "cb2mqtt-acl"})
    bridge = cbtest.start_bridge(env)
    cbtest.on_cleanup(bridge.stop)

    ev = cbtest.api_event
    tip = ev("tip", user=cbtest.api_user("carol"), tip={"tokens": 9, "isAnon": False,
                                                         "message": "hi"})
    a_ids = api.control.add_events("alice", [ev("follow", user=cbtest.api_user("u1")), tip,
                                             ev("follow", user=cbtest.api_user("u2")),
                                             ev("unfollow", user=cbtest.api_user("u3"))])
    b_ids = api.control.add_events("bob", [ev("follow", user=cbtest.api_user("v%d" % i))
                                           for i in range(5)])
    # bob flows; alice's first event arrives, the tip is refused and the
    # events behind it wait.
    cbtest.wait_until(lambda: [i for _, i in event_msgs(sub, "bob")] == b_ids, timeout=20,
                      what="bob's events\n" + bridge.describe())
    cbtest.wait_until(lambda: "refused" in bridge.stderr_text(), timeout=20,
                      what="the refusal in the log")
    # What was in flight with the tip may arrive; after that nothing of
    # alice's, through two retries at least (1 s, 2 s).
    time.sleep(0.5)
    held = event_msgs(sub, "alice")
    time.sleep(2.5)
    assert event_msgs(sub, "alice") == held, (held, event_msgs(sub, "alice"))
    assert held[0] == ("follow", a_ids[0]) and ("tip", a_ids[1]) not in held, held
    log = bridge.stderr_text()
    refusals = [l for l in log.splitlines() if "refused" in l and " error " in l]
    assert len(refusals) == 1, refusals  # at most once a minute
    assert "cb/alice/tip" in refusals[0] and "0x87" in refusals[0], refusals[0]
    assert a_ids[1] in refusals[0], refusals[0]
    assert bridge.alive(), bridge.describe()

    # The ACL is fixed; mosquitto re-reads it on SIGHUP.
    with open(acl, "w") as f:
        f.write(ACL_DENY.replace("topic deny cb/alice/tip\n", ""))
    broker.proc.send_signal(signal.SIGHUP)
    cbtest.wait_until(lambda: ("unfollow", a_ids[3]) in event_msgs(sub, "alice")[len(held):],
                      timeout=40, what="alice's events after the ACL fix\n" + bridge.describe())
    got = event_msgs(sub, "alice")
    # The tip, then every event behind it again, in id order.
    assert [i for _, i in got[len(held):]] == a_ids[1:], (held, got)
    assert [t for t, _ in got[len(held):]] == ["tip", "follow", "unfollow"], got
    # Re-sent with backoff (1 s doubling to 60 s) while the ACL denied it:
    # a few tries, not a tight loop.
    tries = re.search(r"was accepted after (\d+) refusal", bridge.stderr_text())
    assert tries and 1 <= int(tries.group(1)) <= 10, bridge.stderr_text()[-2000:]
    # Without a reconnect: the broker saw the bridge connect once.
    assert broker.log().count("as cb2mqtt-acl") == 1, broker.log()[-2000:]
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()
    for _, tok in TOKENS:
        cbtest.assert_no_secret(bridge.stderr_text(), tok, "the bridge's log")


def test_broadcasters_served_in_turn_after_outage():
    broker = cbtest.Mosquitto(extra_conf=[
        "persistence true", "persistence_location %s/" % cbtest.tempdir("cbtest-mqdb-"),
        "max_queued_messages 0", "max_inflight_messages 0"]).start()
    cbtest.on_cleanup(broker.stop)
    api_args = ["--max-wait", "1", "--batch-size", "500"]
    for name, tok in TOKENS:
        api_args += ["--broadcaster", "%s:%s" % (name, tok)]
    api = cbtest.FakeApiProcess(api_args)
    cbtest.on_cleanup(api.stop)
    # A persistent session keeps what arrives while the subscriber is away.
    sub = cbtest.Subscriber(broker, topics=("cb/+/follow",), qos=1, extra=["-c"]).start()
    cbtest.on_cleanup(sub.stop)
    broker.stop()
    env = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir("cbtest-state-"), TOKENS)
    bridge = cbtest.start_bridge(env)
    cbtest.on_cleanup(bridge.stop)
    a_ids = api.control.generate("alice", 3000, methods=["follow"])
    b_ids = api.control.generate("bob", 300, methods=["follow"])
    # Both backlogs are fetched while the broker is away.
    def fetched(name, last):
        reqs = [r for r in api.control.requests(name) if r.get("kind") == "events"]
        return any(last in (r.get("raw_query") or "") for r in reqs)
    cbtest.wait_until(lambda: fetched("alice", a_ids[-1]) and fetched("bob", b_ids[-1]),
                      timeout=30, what="both backlogs fetched\n" + bridge.describe())
    broker.start()
    cbtest.wait_until(lambda: len(sub.messages()) >= 3300, timeout=60,
                      what="every event\n" + bridge.describe())
    order = [m.topic.split("/")[1] for m in sub.messages() if m.topic.endswith("/follow")]
    assert order.count("bob") == 300 and order.count("alice") == 3000, len(order)
    last_bob = len(order) - 1 - order[::-1].index("bob")
    # Served in turn: bob is done long before alice (one each per turn,
    # 256 in flight at most); served in a row it would come last.
    assert last_bob < 1500, "bob's last event arrived at position %d of %d" % (
        last_bob, len(order))
    # And interleaved, not one backlog after the other in fetch order: no
    # long run of alice's before bob is done.
    longest = run = 0
    for who in order[:last_bob]:
        run = run + 1 if who == "alice" else 0
        longest = max(longest, run)
    assert longest < 300, "%d of alice's events in a row before bob was done" % longest
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()


if __name__ == "__main__":
    cbtest.run([test_refused_publish_is_resent_after_acl_fix,
                test_broadcasters_served_in_turn_after_outage])
