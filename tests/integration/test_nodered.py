#!/usr/bin/env python3
"""The shipped Node-RED flow (config/node-red/flows.json) against cb2mqtt.

Installs node-red@4 from npm once into $CBEV_BUILD_DIR/nodered (reruns reuse
it; Node.js 20 runs 4.1.x, not 5), starts it headless on a free port with a
throwaway userDir and the shipped flow, next to a real mosquitto, the fake
API and the bridge. Produces tips of 10, 150 (anonymous) and 500 tokens and
state changes, and checks that the flow's CB_TIPS_FILE holds exactly the two
tips of at least TIP_THRESHOLD (100) tokens, the anonymous one "from":
"anonymous", plus one line per retained state topic change. Node-RED is then
stopped with SIGINT and must exit 0.

Skips (77) when cb2mqtt is not built, node/npm or mosquitto are missing, or
npm cannot reach its registry.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import cbtest

TOKEN = "noderedTok-55aa66bb77cc"
MARKER = ".cbtest-installed"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT",
                  "ENETUNREACH", "EHOSTUNREACH", "network", "getaddrinfo",
                  "request to https://registry", "FetchError")


def cache_dir():
    build = os.environ.get("CBEV_BUILD_DIR")
    if not build:
        # By hand: the build folder the bridge came from (BUILD/src/bridge/cb2mqtt).
        build = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(cbtest.bridge_program()))))
    return os.path.join(build, "nodered")


def install_node_red():
    """The path of red.js, installing node-red@4 into the cache on first use.
    The install goes to a temporary sibling and is renamed into place only
    when complete, so an interrupted install is never taken for a good one."""
    npm = cbtest.require_tool("npm")
    cache = cache_dir()
    red = os.path.join(cache, "node_modules", "node-red", "red.js")
    if os.path.exists(os.path.join(cache, MARKER)) and os.path.exists(red):
        return red
    tmp = "%s.tmp-%d" % (cache, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        r = subprocess.run([npm, "install", "--prefix", tmp, "--no-audit", "--no-fund",
                            "--no-update-notifier", "node-red@4"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        cbtest.skip("npm install node-red@4 took over 600 s (registry unreachable?)")
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        if any(e in out for e in NETWORK_ERRORS):
            cbtest.skip("npm cannot reach its registry to install node-red@4:\n" + out[-800:])
        raise AssertionError("npm install node-red@4 failed:\n" + out[-3000:])
    with open(os.path.join(tmp, MARKER), "w") as f:
        f.write("node-red@4\n")
    if os.path.exists(cache):  # a broken earlier attempt (no marker)
        shutil.rmtree(cache, ignore_errors=True)
    try:
        os.rename(tmp, cache)
    except OSError:  # another run installed it meanwhile: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    assert os.path.exists(red), "node-red installed but %s is missing" % red
    return red


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]


def user(name):
    return cbtest.api_user(name, hasDarkmode=False)


event = cbtest.api_event


def tip(name, tokens, anon, text):
    return event("tip", user=user(name),
                 tip={"tokens": tokens, "isAnon": anon, "message": "| " + text if text else ""})


def test_flow_writes_big_tips_and_state():
    bridge_prog = cbtest.bridge_program()
    node = cbtest.require_tool("node")
    cbtest.require_tool("mosquitto")
    flows_src = os.path.join(os.environ.get("CBEV_SOURCE_DIR", os.path.join(
        cbtest.HERE, "..", "..")), "config", "node-red", "flows.json")
    assert os.path.exists(flows_src), flows_src
    red = install_node_red()

    broker = cbtest.Mosquitto().start()
    api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster", "alice:%s" % TOKEN])
    cbtest.on_cleanup(api.stop)

    # Node-RED: its own userDir and a copy of the flow (it may rewrite the
    # file it is given), HOME pointed away from the real one.
    work = cbtest.tempdir("cbtest-nodered-")
    user_dir = os.path.join(work, "userdir")
    os.makedirs(user_dir)
    flows = os.path.join(user_dir, "flows.json")
    shutil.copyfile(flows_src, flows)
    tips_file = os.path.join(work, "out", "tips.jsonl")
    port = cbtest.free_port()
    env = dict(os.environ)
    env.update({"HOME": work, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port),
                "TIP_THRESHOLD": "100", "CB_TIPS_FILE": tips_file,
                "NODE_RED_ENABLE_PROJECTS": "false"})
    nr = cbtest.Process([node, red, "--userDir", user_dir, "--port", str(port), flows],
                        env=env, name="node-red")
    cbtest.wait_port(port, timeout=60, proc=nr)
    connected = "Connected to broker"
    cbtest.wait_until(lambda: connected in nr.stdout_text() or not nr.alive(), 60,
                      what="Node-RED's MQTT connection")
    assert nr.alive(), nr.describe()
    out = nr.stdout_text()
    assert "Started flows" in out, out[-3000:]
    assert "[error]" not in out, out[-3000:]
    assert "Node-RED version: v4." in out, out[-3000:]

    # A watcher on the same topics, to know when the bridge is done.
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1).start()
    cbtest.on_cleanup(sub.stop)
    env_b = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir("cbtest-state-"),
                              (("alice", TOKEN),))
    bridge = cbtest.Process([bridge_prog], env=env_b, name="cb2mqtt")

    # Three phases, each seen through before the next, as a live show would
    # come (the bridge may fold the state changes of one batch into one).
    def state_is(name, value, mark):
        # Only messages after `mark`: the bridge's first connect publishes
        # the initial state (broadcasting false) too.
        def seen():
            return any(m.topic == "cb/alice/state/" + name and m.text == value
                       for m in sub.messages()[mark:])
        cbtest.wait_until(seen, 30, what="state/%s = %s" % (name, value))
    mark = len(sub.messages())
    ids = api.control.add_events("alice", [
        event("broadcastStart", user=user("alice")),
        event("userEnter", user=user("bob")),
        event("userEnter", user=user("carol")),
    ])
    state_is("broadcasting", "true", mark)
    state_is("viewers", "2", mark)
    mark = len(sub.messages())
    ids += api.control.add_events("alice", [
        tip("bob", 10, False, "small one"),
        tip("erin", 150, True, "from nobody"),
        event("roomSubjectChange", subject="Goal: 1000 tokens"),
        tip("carol", 500, False, "big one"),
    ])
    state_is("session_tokens", "660", mark)  # 10 + 150 + 500
    mark = len(sub.messages())
    ids += api.control.add_events("alice", [
        event("userLeave", user=user("carol")),
        event("broadcastStop", user=user("alice")),
    ])
    state_is("broadcasting", "false", mark)

    def final_state_seen():
        # the flow wrote broadcasting "true" and, after it, "false"
        seq = [ln.get("value") for ln in read_lines(tips_file)
               if ln.get("kind") == "state" and ln.get("name") == "broadcasting"]
        return "true" in seq and seq[-1] == "false" and seq.index("true") < len(seq) - 1
    cbtest.wait_until(final_state_seen, 20, what="the flow's last state line")
    time.sleep(1.5)  # anything late (a wrong third tip) has time to land
    lines = read_lines(tips_file)

    big = [ln for ln in lines if ln.get("kind") == "big_tip"]
    assert len(big) == 2, "want exactly the 150 and 500 tips: %r" % big
    assert big[0] == {"kind": "big_tip", "id": ids[4], "broadcaster": "alice", "tokens": 150,
                      "from": "anonymous", "message": "from nobody"}, big[0]
    assert big[1] == {"kind": "big_tip", "id": ids[6], "broadcaster": "alice", "tokens": 500,
                      "from": "carol", "message": "big one"}, big[1]
    assert "erin" not in json.dumps(lines), "the anonymous tipper leaked into the flow"

    state = [ln for ln in lines if ln.get("kind") == "state"]
    assert len(state) + len(big) == len(lines), "unexpected lines: %r" % lines
    for ln in state:
        assert ln["broadcaster"] == "alice" and isinstance(ln["value"], str), ln
        assert ln["name"] in ("broadcasting", "subject", "session_tokens", "viewers"), ln
    values = {}
    for ln in state:
        values.setdefault(ln["name"], []).append(ln["value"])
    assert "true" in values.get("broadcasting", []), values
    assert values["broadcasting"][-1] == "false", values
    assert values.get("subject", [None])[-1] == "Goal: 1000 tokens", values
    tokens = values.get("session_tokens", [])
    assert "660" in tokens and tokens[-1] == "660", tokens  # 10 + 150 + 500
    assert "2" in values.get("viewers", []), values
    cbtest.assert_no_secret(json.dumps(lines), TOKEN, "the flow's file")

    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(15) == 0, bridge.describe()
    nr.send_signal(signal.SIGINT)
    rc = nr.wait(30)
    out = nr.stdout_text()
    assert rc == 0, "Node-RED did not stop cleanly:\n" + nr.describe()
    assert re.search(r"Stopped flows", out), out[-2000:]
    cbtest.assert_no_secret(out + nr.stderr_text(), TOKEN, "Node-RED's log")


if __name__ == "__main__":
    cbtest.run([test_flow_writes_big_tips_and_state])
