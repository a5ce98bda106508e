#!/usr/bin/env python3
"""cb2mqtt to a real mosquitto over TLS and with broker credentials.

Certificates are made at test time (cbtest.Pki: a throwaway CA, a server
certificate for 127.0.0.1, a client certificate). The bridge talks to the
broker's TLS listener only; the recording subscriber sits on the plain
listener of the same broker, so an event seen there went through the
bridge's TLS connection. Covered: [mqtt] ca_file; a client certificate the
broker requires (cert_file/key_file), and the same broker refusing the bridge
without one; no CA configured (the system store does not know our CA): the
bridge logs a TLS error, keeps retrying, never exits, publishes nothing;
username + password_file against a mosquitto password file, and a wrong
password that is refused and never shows in the bridge's output (any level),
in --print-config or in an MQTT message.
"""

import os
import re
import signal
import time

import cbtest

TOKEN = "tlsTok-0123456789abcdef"
BROADCASTERS = (("alice", TOKEN),)
EVENT_TOPIC = "cb/alice/+"
EVENT_TYPES = ("broadcast_start", "broadcast_stop", "room_subject_change", "user_enter",
               "user_leave", "follow", "unfollow", "fanclub_join", "chat_message",
               "private_message", "tip", "media_purchase")


class Rig:
    """A broker (with whatever TLS/users options), the fake API as its own
    process with events queued, and a subscriber on the plain listener."""

    def __init__(self, events=20, sub_user=None, sub_password=None, **broker_kw):
        self.broker = cbtest.Mosquitto(**broker_kw).start()
        self.api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster",
                                          "alice:%s" % TOKEN])
        cbtest.on_cleanup(self.api.stop)
        self.ids = self.api.control.generate("alice", events)
        self.sub = cbtest.Subscriber(self.broker, topics=("cb/#",), qos=1,
                                     user=sub_user, password=sub_password).start()
        cbtest.on_cleanup(self.sub.stop)
        self.state_dir = cbtest.tempdir("cbtest-state-")

    def bridge(self, url, **extra):
        env = cbtest.bridge_env(url, self.api.base_url, self.state_dir, BROADCASTERS, extra)
        return cbtest.start_bridge(env)

    def event_ids(self):
        return [m.json()["id"] for m in self.sub.messages(EVENT_TOPIC)
                if m.topic.split("/")[-1] in EVENT_TYPES]

    def wait_all_events(self, bridge, timeout=30):
        def done():
            if not bridge.alive():
                raise AssertionError("the bridge exited: " + bridge.describe())
            got = self.event_ids()
            return set(self.ids) <= set(got) and got
        got = cbtest.wait_until(done, timeout, what="%d events through TLS" % len(self.ids))
        first = []
        for i in got:
            if i not in first:
                first.append(i)
        assert first == self.ids, "events lost or out of order"
        return got

    def assert_nothing_published(self, bridge, seconds):
        """Over `seconds`: the bridge stays alive and no cb/ message at all
        arrives (not even cb/bridge/status)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert bridge.alive(), "the bridge exited: " + bridge.describe()
            msgs = self.sub.messages("cb/#")
            assert not msgs, "published without a good connection: %r" % msgs[:3]
            time.sleep(0.2)


def stop_cleanly(bridge):
    bridge.send_signal(signal.SIGTERM)
    rc = bridge.wait(15)
    assert rc == 0, "SIGTERM: exit %s\n%s" % (rc, bridge.describe())


def problem_lines(log):
    """Log lines at warn or error level about the MQTT connection."""
    return [ln for ln in log.splitlines()
            if re.match(r"^\S+\s+(warn|error)\s+mqtt:", ln)]


def connection_attempts(bridge):
    return bridge.stderr_text().count("mqtt: connecting to")


def test_tls_with_ca_file():
    pki = cbtest.Pki()
    rig = Rig(tls=pki)
    bridge = rig.bridge("mqtts://127.0.0.1:%d" % rig.broker.tls_port,
                        CB2MQTT_MQTT_CA_FILE=pki.ca_cert)
    rig.wait_all_events(bridge)
    status = rig.sub.wait_for(lambda m: m.topic == "cb/bridge/status", timeout=5)
    assert status.text == "online"
    for m in rig.sub.messages(EVENT_TOPIC):
        if m.topic.split("/")[-1] in EVENT_TYPES:
            assert m.qos == 1 and not m.retained
    log = bridge.stderr_text()
    assert re.search(r"mqtt: connected to 127\.0\.0\.1:%d" % rig.broker.tls_port, log), log[-2000:]
    stop_cleanly(bridge)
    assert rig.sub.wait_for(lambda m: m.topic == "cb/bridge/status" and m.text == "offline",
                            timeout=5)
    cbtest.assert_no_secret(bridge.stderr_text() + bridge.stdout_text(), TOKEN, "the log")
    cbtest.assert_no_secret_in_messages(rig.sub.messages(), TOKEN)


def test_tls_plain_mqtt_url_to_tls_port_fails():
    # The bridge must not silently fall back: mqtt:// to a TLS listener is a
    # failed connection, retried, with nothing published.
    pki = cbtest.Pki()
    rig = Rig(tls=pki)
    bridge = rig.bridge("mqtt://127.0.0.1:%d" % rig.broker.tls_port,
                        CB2MQTT_MQTT_CA_FILE=pki.ca_cert)
    rig.assert_nothing_published(bridge, 4)
    stop_cleanly(bridge)


def test_tls_client_certificate_required():
    pki = cbtest.Pki()
    rig = Rig(tls=pki, require_client_cert=True)
    url = "mqtts://127.0.0.1:%d" % rig.broker.tls_port

    # Without a client certificate the broker ends every handshake.
    refused = rig.bridge(url, CB2MQTT_MQTT_CA_FILE=pki.ca_cert)
    rig.assert_nothing_published(refused, 4)
    assert connection_attempts(refused) >= 2, "no retry:\n" + refused.describe()
    stop_cleanly(refused)

    # With cert_file/key_file it works.
    bridge = rig.bridge(url, CB2MQTT_MQTT_CA_FILE=pki.ca_cert,
                        CB2MQTT_MQTT_CERT_FILE=pki.client_cert,
                        CB2MQTT_MQTT_KEY_FILE=pki.client_key)
    rig.wait_all_events(bridge)
    stop_cleanly(bridge)
    with open(pki.client_key) as f:
        key_pem = f.read()
    key_body = key_pem.strip().splitlines()[1]  # a line of the private key
    assert key_body not in bridge.stderr_text() + bridge.stdout_text()


def test_tls_without_ca_keeps_retrying():
    pki = cbtest.Pki()
    rig = Rig(tls=pki)
    bridge = rig.bridge("mqtts://127.0.0.1:%d" % rig.broker.tls_port)  # system CAs only
    rig.assert_nothing_published(bridge, 8)
    log = bridge.stderr_text()
    if os.environ.get("CBTEST_SHOW_LOG"):
        print(log[-3000:])
    attempts = connection_attempts(bridge)
    assert attempts >= 2, "expected retries, saw %d attempts:\n%s" % (attempts, log[-3000:])
    # An error a person can act on, at a level above debug.
    errors = problem_lines(log)
    assert len(errors) >= 2, "no error/warning per failed attempt:\n" + log[-3000:]
    assert any(re.search(r"tls|ssl|certificate|handshake|verif", ln, re.I) for ln in errors), \
        "the warnings do not say the TLS handshake failed:\n" + log[-3000:]
    assert not rig.event_ids()
    stop_cleanly(bridge)
    cbtest.assert_no_secret(bridge.stderr_text() + bridge.stdout_text(), TOKEN, "the log")


def test_password_file_and_wrong_password_not_leaked():
    good, bad = "Right-Pass-7f3a9c", "Wr0ng/Pass+w0rd%Secret"
    rig = Rig(users={"cbbridge": good, "watcher": "watch-pw-1"},
              sub_user="watcher", sub_password="watch-pw-1")
    tmp = cbtest.tempdir("cbtest-secrets-")
    good_file, bad_file = os.path.join(tmp, "good"), os.path.join(tmp, "bad")
    with open(good_file, "w") as f:
        f.write(good + "\n")  # a trailing newline, as editors and echo leave it
    with open(bad_file, "w") as f:
        f.write(bad + "\n")
    os.chmod(good_file, 0o600)
    os.chmod(bad_file, 0o600)

    # A wrong password: refused by the broker, retried, never exits, never shown.
    wrong = rig.bridge(rig.broker.url, CB2MQTT_MQTT_USERNAME="cbbridge",
                       CB2MQTT_MQTT_PASSWORD_FILE=bad_file)
    rig.assert_nothing_published(wrong, 5)
    assert connection_attempts(wrong) >= 2, wrong.describe()
    assert problem_lines(wrong.stderr_text()), "a refused login is not reported:\n" + \
        wrong.describe()
    stop_cleanly(wrong)
    # The same wrong password given directly in the environment.
    wrong_env = rig.bridge(rig.broker.url, CB2MQTT_MQTT_USERNAME="cbbridge",
                           CB2MQTT_MQTT_PASSWORD=bad)
    rig.assert_nothing_published(wrong_env, 3)
    stop_cleanly(wrong_env)
    for p in (wrong, wrong_env):
        text = p.stderr_text() + p.stdout_text()
        cbtest.assert_no_secret(text, bad, "the log of a refused bridge")
        cbtest.assert_no_secret(text, TOKEN, "the log of a refused bridge")
    printed = cbtest.run_process(
        [cbtest.bridge_program(), "--print-config"],
        env=cbtest.bridge_env(rig.broker.url, rig.api.base_url, rig.state_dir, BROADCASTERS,
                              {"CB2MQTT_MQTT_USERNAME": "cbbridge",
                               "CB2MQTT_MQTT_PASSWORD": bad}), timeout=15)
    assert printed.returncode == 0, printed.describe()
    assert "cbbridge" in printed.stdout_text(), printed.stdout_text()
    cbtest.assert_no_secret(printed.stdout_text() + printed.stderr_text(), bad, "--print-config")

    # The right password, from password_file (newline stripped): events arrive.
    bridge = rig.bridge(rig.broker.url, CB2MQTT_MQTT_USERNAME="cbbridge",
                        CB2MQTT_MQTT_PASSWORD_FILE=good_file)
    rig.wait_all_events(bridge)
    stop_cleanly(bridge)
    text = bridge.stderr_text() + bridge.stdout_text()
    cbtest.assert_no_secret(text, good, "the log")
    msgs = rig.sub.messages()
    for secret in (good, bad, TOKEN):
        cbtest.assert_no_secret_in_messages(msgs, secret)


if __name__ == "__main__":
    cbtest.run([test_tls_with_ca_file, test_tls_plain_mqtt_url_to_tls_port_fails,
                test_tls_client_certificate_required, test_tls_without_ca_keeps_retrying,
                test_password_file_and_wrong_password_not_leaked])
