#!/usr/bin/env python3
"""cb2mqtt's /metrics (SPEC 5, Metrics), scraped by a real Prometheus.

The bridge runs against the fake API and a real mosquitto with
metrics.listen on a free loopback port. The test reads /metrics itself
(content type, exact samples, 404 elsewhere, no token, `promtool check
metrics` clean), then starts Debian's prometheus with its own config and
storage in a temp dir, on loopback, scraping the bridge every second, and
asks Prometheus's HTTP API for the values it expects. Skips (77) when
prometheus or promtool is not installed.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import cbtest

TOKEN = "metricsTok-4f2a9c"


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def sample(text, line_start):
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def test_metrics_scraped_by_prometheus():
    prometheus = cbtest.require_tool("prometheus")
    promtool = cbtest.require_tool("promtool")
    broker = cbtest.Mosquitto().start()
    cbtest.on_cleanup(broker.stop)
    api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster", "alice:%s" % TOKEN,
                                 "--broadcaster", "bob:%s" % TOKEN + "b"])
    cbtest.on_cleanup(api.stop)
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1).start()
    cbtest.on_cleanup(sub.stop)
    port = cbtest.free_port()
    env = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir("cbtest-state-"),
                            [("alice", TOKEN), ("bob", TOKEN + "b")],
                            {"CB2MQTT_METRICS_LISTEN": "127.0.0.1:%d" % port})
    tips = [cbtest.api_event("tip", user=cbtest.api_user("t%d" % k),
                             tip={"tokens": 25, "isAnon": False, "message": ""})
            for k in range(3)]
    ids = api.control.add_events("alice", tips + [cbtest.api_event("follow")])
    bridge = cbtest.start_bridge(env, name="cb2mqtt-metrics")
    cbtest.wait_port(port, proc=bridge)
    sub.wait_for(lambda m: m.topic == "cb/alice/follow" and m.json()["id"] == ids[-1],
                 timeout=30, what="alice's events")
    base = "http://127.0.0.1:%d" % port

    # Acknowledged counts follow the PUBACKs: wait until all four show.
    text = None
    def published():
        nonlocal text
        _, _, text = get(base + "/metrics")
        return sample(text, 'cb2mqtt_events_published_total{broadcaster="alice"}') == 4
    cbtest.wait_until(published, 15, what="4 events acknowledged in /metrics")
    status, ctype, text = get(base + "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    want = {
        'cb2mqtt_events_total{broadcaster="alice",event_type="tip"}': 3,
        'cb2mqtt_events_total{broadcaster="alice",event_type="follow"}': 1,
        'cb2mqtt_events_total{broadcaster="bob",event_type="tip"}': 0,
        'cb2mqtt_tip_tokens_total{broadcaster="alice"}': 75,
        'cb2mqtt_broadcaster_up{broadcaster="alice"}': 1,
        'cb2mqtt_queued_events{broadcaster="alice"}': 0,
        'cb2mqtt_publish_refused_total{broadcaster="alice"}': 0,
        "cb2mqtt_mqtt_connected": 1,
        "cb2mqtt_event_delivery_seconds_count": 4,
    }
    for key, value in want.items():
        assert sample(text, key) == value, (key, sample(text, key))
    assert sample(text, 'cb2mqtt_polls_total{broadcaster="alice"}') >= 1
    assert 'cb2mqtt_build_info{version="' in text
    assert abs(sample(text, 'cb2mqtt_last_event_timestamp_seconds{broadcaster="alice"}')
               - time.time()) < 60
    assert sample(text, "process_resident_memory_bytes") > 1e6
    cbtest.assert_no_secret(text, TOKEN, "/metrics")
    lint = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
    try:
        get(base + "/other")
        raise AssertionError("/other answered")
    except urllib.error.HTTPError as e:
        assert e.code == 404, e.code

    # A real Prometheus scrapes it.
    d = cbtest.tempdir("cbtest-prom-")
    prom_port = cbtest.free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: cb2mqtt\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n"
                % (os.path.join(os.environ["CBEV_SOURCE_DIR"], "config", "prometheus",
                                "cb2mqtt.rules.yml"), port))
    prom = cbtest.Process([prometheus, "--config.file=" + os.path.join(d, "prometheus.yml"),
                           "--storage.tsdb.path=" + os.path.join(d, "data"),
                           "--web.listen-address=127.0.0.1:%d" % prom_port], name="prometheus")
    cbtest.on_cleanup(prom.stop)
    q = "http://127.0.0.1:%d/api/v1/query?query=" % prom_port

    def query(expr):
        try:
            _, _, body = get(q + urllib.parse.quote(expr))
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
        r = json.loads(body)
        return r["data"]["result"] if r.get("status") == "success" else None

    def value(expr):
        r = query(expr)
        return float(r[0]["value"][1]) if r else None

    cbtest.wait_until(lambda: value('up{job="cb2mqtt"}') == 1, 60,
                      what="Prometheus scraping the bridge (%s)" % prom.describe())
    assert value('cb2mqtt_events_total{broadcaster="alice",event_type="tip"}') == 3
    assert value('cb2mqtt_tip_tokens_total{broadcaster="alice"}') == 75
    assert value('sum(cb2mqtt_broadcaster_up)') == 2
    assert value('cb2mqtt_event_delivery_seconds_count') == 4
    # The rules file loads and its alerts are known to Prometheus (none fire).
    _, _, body = get("http://127.0.0.1:%d/api/v1/rules" % prom_port)
    names = {r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    assert "Cb2mqttBrokerDisconnected" in names, names
    # A new event shows up in Prometheus too.
    api.control.add_events("bob", [cbtest.api_event("follow", b="bob")])
    cbtest.wait_until(lambda: value('cb2mqtt_events_total{broadcaster="bob",'
                                    'event_type="follow"}') == 1, 30, what="bob's follow")
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()
    cbtest.assert_no_secret(bridge.stderr_text(), TOKEN, "the bridge's log")


if __name__ == "__main__":
    cbtest.run([test_metrics_scraped_by_prometheus])
