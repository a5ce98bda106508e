"""The Home Assistant add-on's entrypoint (cb2mqtt/entrypoint.py) end to
end, without a Supervisor: a fake one on loopback (fake_supervisor.py)
serves GET /services/mqtt with the credentials of a real mosquitto that
has a password file, the fake Events API serves two broadcasters, and
/data/options.json is a temporary directory's. The entrypoint writes the
secrets and the INI and execs the real (test build of the) bridge.

The test-only variables of the entrypoint (CBADDON_*) point it at these
directories and at the fake Supervisor; CBADDON_USER is empty so that it
stays the test's user (scripts/check-image.sh --addon covers the drop to
uid 10001 in the image's filesystem).
"""

import json
import os
import signal
import stat
import sys

import cbtest
import fake_supervisor

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CBEV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
ENTRYPOINT = os.path.join(SRC, "cb2mqtt", "entrypoint.py")

SUP_TOKEN = "f3c5b1a0e9d84c7b9a6e5d4c3b2a1908"
TOKENS = {"alice": "addon-alice-token-7Hq2", "bob": "addon-bob-token-Zx9p"}
MQTT_USER, MQTT_PASSWORD = "addons", "mqtt-pw-Ee4Rr5Tt6"


def default_options(**over):
    """What the Supervisor writes for config.yaml's defaults plus two
    broadcasters."""
    opts = {"broadcasters": [{"name": n, "token": t} for n, t in TOKENS.items()],
            "publish": [], "payload": "normalized", "expose_anonymous_tippers": False,
            "base_topic": "cb", "discovery": True, "discovery_prefix": "homeassistant",
            "log_level": "debug"}
    opts.update(over)
    return opts


class Addon:
    """One add-on container's worth of directories and environment."""

    def __init__(self, options, supervisor=None, api=None, bridge=None, sup_token=SUP_TOKEN):
        self.root = cbtest.tempdir("cbtest-addon-")
        self.data = os.path.join(self.root, "data")
        self.run_dir = os.path.join(self.root, "run")
        self.ini = os.path.join(self.root, "etc", "cb2mqtt.ini")
        os.makedirs(self.data)
        if options is not None:
            with open(os.path.join(self.data, "options.json"), "w") as f:
                json.dump(options, f)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CB2MQTT_", "CB_", "CBADDON_"))}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update({
            "SUPERVISOR_TOKEN": sup_token,
            "CBADDON_SUPERVISOR_URL": supervisor.url if supervisor else "http://127.0.0.1:9",
            "CBADDON_DATA_DIR": self.data,
            "CBADDON_RUN_DIR": self.run_dir,
            "CBADDON_INI": self.ini,
            "CBADDON_BRIDGE": bridge or cbtest.bridge_program(),
            "CBADDON_USER": "",
        })
        if api is not None:
            # Not add-on options: the bridge's own variables, passed through
            # (the Supervisor sets none of them), for the fake API and quick
            # retries.
            env.update({"CB2MQTT_EVENTS_API": api.base_url, "CB2MQTT_EVENTS_TIMEOUT": "1",
                        "CB2MQTT_EVENTS_RETRY_BACKOFF": "0.2",
                        "CB2MQTT_EVENTS_RETRY_MAX_DELAY": "1"})
        self.env = env

    def start(self):
        return cbtest.Process([sys.executable, ENTRYPOINT], env=self.env, name="cb2mqtt-addon")

    def run(self, timeout=30):
        return cbtest.run_process([sys.executable, ENTRYPOINT], env=self.env,
                                  name="cb2mqtt-addon", timeout=timeout)

    def ini_text(self):
        with open(self.ini) as f:
            return f.read()


def supervisor(mqtt):
    sup = fake_supervisor.FakeSupervisor(SUP_TOKEN, mqtt).start()
    cbtest.on_cleanup(sup.stop)
    return sup


def broker():
    b = cbtest.Mosquitto(users={MQTT_USER: MQTT_PASSWORD, "bridge": "bridge-pw-1"}).start()
    cbtest.on_cleanup(b.stop)
    return b


def assert_mode(path, mode):
    got = stat.S_IMODE(os.lstat(path).st_mode)
    assert got == mode, "%s has mode %o, want %o" % (path, got, mode)


def assert_clear_error(proc, status, *phrases):
    assert proc.returncode == status, "exit %s, want %d\n%s" % (
        proc.returncode, status, proc.describe())
    err = proc.stderr_text()
    for p in phrases:
        assert p in err, "no %r in the message:\n%s" % (p, err)
    assert "Traceback" not in err, "a traceback instead of a message:\n" + err
    for tok in TOKENS.values():
        cbtest.assert_no_secret(err, tok, "the entrypoint's message")


def test_two_broadcasters_from_the_supervisor():
    mq = broker()
    sup = supervisor(fake_supervisor.mqtt_service("127.0.0.1", mq.port, MQTT_USER, MQTT_PASSWORD))
    api = cbtest.fake_api(dict(TOKENS), max_wait=0.5)
    addon = Addon(default_options(), sup, api)
    with cbtest.Subscriber(mq, user=MQTT_USER, password=MQTT_PASSWORD) as sub:
        proc = addon.start()
        for name in TOKENS:
            api.generate(name, 2, methods=["tip"])
        for name in TOKENS:
            sub.wait_count("cb/%s/tip" % name, 2, timeout=30)
            disc = sub.wait_for(
                lambda m, n=name: m.topic == "homeassistant/device/cb2mqtt_%s/config" % n
                and m.payload, timeout=30, what="discovery of %s" % name)
            assert disc.json()["device"], disc.payload[:200]
        assert proc.alive(), proc.describe()

        # The Supervisor was asked once, with its token.
        reqs = sup.mqtt_requests()
        assert len(reqs) == 1 and reqs[0]["token_ok"], reqs

        # Secrets: one 0600 file each in a 0700 directory; none in the INI,
        # the bridge's argv or environment, state_dir or the log.
        secrets = os.path.join(addon.run_dir, "secrets")
        assert_mode(secrets, 0o700)
        files = sorted(os.listdir(secrets))
        assert files == ["broadcaster-1.token", "broadcaster-2.token", "mqtt.password"], files
        for f in files:
            assert_mode(os.path.join(secrets, f), 0o600)
        ini = addon.ini_text()
        assert "url = mqtt://127.0.0.1:%d" % mq.port in ini, ini
        assert "username = addons" in ini and "password_file = " in ini, ini
        assert "state_dir = " + os.path.join(addon.data, "cb2mqtt") in ini, ini
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            argv = f.read().split(b"\0")
        assert os.path.basename(argv[0].decode()) == "cb2mqtt", "the entrypoint did not exec: %r" % argv
        with open("/proc/%d/environ" % proc.pid, "rb") as f:
            environ = f.read().decode(errors="replace")
        assert "SUPERVISOR_TOKEN" not in environ and SUP_TOKEN not in environ
        assert "CBADDON_" not in environ
        state_text = ""
        for root, _, names in os.walk(addon.data):
            for n in names:
                if n != "options.json":
                    with open(os.path.join(root, n), errors="replace") as f:
                        state_text += f.read()
        assert state_text, "nothing in state_dir"
        for tok in list(TOKENS.values()) + [MQTT_PASSWORD, SUP_TOKEN]:
            for where, text in (("the INI", ini), ("argv", repr(argv)), ("the environment", environ),
                                ("state_dir", state_text)):
                cbtest.assert_no_secret(text, tok, where)

        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        assert rc == 0, "exit %s after SIGTERM\n%s" % (rc, proc.describe())
        log = proc.stderr_text() + proc.stdout_text()
        for tok in list(TOKENS.values()) + [MQTT_PASSWORD, SUP_TOKEN]:
            cbtest.assert_no_secret(log, tok, "the log")
        assert "from the Supervisor (core_mosquitto)" in log, log[-2000:]
        cbtest.assert_no_secret_in_messages(sub.messages(), TOKENS["alice"])
        cbtest.assert_no_secret_in_messages(sub.messages(), TOKENS["bob"])


def test_options_set_by_hand_win():
    """The service's own user is wrong for this broker; the user name and
    password set by hand are used, with the service's host and port."""
    mq = broker()
    sup = supervisor(fake_supervisor.mqtt_service("127.0.0.1", mq.port, MQTT_USER, "wrong"))
    api = cbtest.fake_api({"alice": TOKENS["alice"]}, max_wait=0.5)
    opts = default_options(broadcasters=[{"name": "alice", "token": TOKENS["alice"]}],
                           mqtt_username="bridge", mqtt_password="bridge-pw-1",
                           publish=["follow"])
    addon = Addon(opts, sup, api)
    with cbtest.Subscriber(mq, user=MQTT_USER, password=MQTT_PASSWORD) as sub:
        proc = addon.start()
        api.generate("alice", 1, methods=["tip"])
        api.generate("alice", 1, methods=["follow"])
        sub.wait_count("cb/alice/follow", 1, timeout=30)
        assert not sub.messages("cb/alice/tip"), "publish = follow let a tip through"
        ini = addon.ini_text()
        assert "username = bridge" in ini and "publish = follow" in ini, ini
        proc.stop()


def test_broker_set_by_hand_skips_the_supervisor():
    """mqtt_host set: the Supervisor is not asked (its credentials belong
    to its broker); port, TLS and the INI's other values follow the
    options. metrics_port is written only when set."""
    sup = supervisor(fake_supervisor.mqtt_service("core-mosquitto", 1883, "addons", "x"))
    opts = default_options(mqtt_host="broker.lan", mqtt_tls=True, payload="raw",
                           expose_anonymous_tippers=True, base_topic="chaturbate",
                           discovery=False, discovery_prefix="ha", log_level="warn",
                           metrics_port=9464)
    addon = Addon(opts, sup, bridge="/bin/true")
    p = addon.run()
    assert p.returncode == 0, p.describe()
    assert sup.mqtt_requests() == [], sup.requests
    ini = addon.ini_text()
    for line in ("url = mqtts://broker.lan:8883", "payload = raw",
                 "expose_anonymous_tippers = true", "base_topic = chaturbate",
                 "discovery = false", "prefix = ha", "level = warn",
                 "[metrics]\nlisten = :9464", "[broadcaster:alice]", "[broadcaster:bob]"):
        assert line in ini, "no %r in\n%s" % (line, ini)
    assert "username" not in ini and "password" not in ini, ini

    addon = Addon(default_options(), supervisor(fake_supervisor.mqtt_service("10.0.0.2", 1884)),
                  bridge="/bin/true")
    p = addon.run()
    assert p.returncode == 0, p.describe()
    ini = addon.ini_text()
    assert "url = mqtt://10.0.0.2:1884" in ini and "[metrics]" not in ini, ini
    # The INI holds no secret, so the healthcheck (root) and anyone may read it.
    assert_mode(addon.ini, 0o644)
    assert_mode(os.path.dirname(addon.ini), 0o755)


def test_missing_broker_is_a_clear_error():
    sup = supervisor(None)  # no add-on provides mqtt
    p = Addon(default_options(), sup).run()
    assert_clear_error(p, 2, "no MQTT broker", "Mosquitto broker add-on", "mqtt_host")
    assert len(sup.mqtt_requests()) == 1, "the missing service should be final, not retried"

    p = Addon(default_options(), supervisor(None), sup_token="").run()
    assert_clear_error(p, 2, "no SUPERVISOR_TOKEN", "mqtt_host")


def test_wrong_supervisor_token_is_refused():
    sup = supervisor(fake_supervisor.mqtt_service("127.0.0.1", 1883))
    p = Addon(default_options(), sup, sup_token="0" * 32).run()
    assert_clear_error(p, 1, "the Supervisor refused the MQTT service (HTTP 401")


def test_invalid_options_are_clear_errors():
    sup = supervisor(fake_supervisor.mqtt_service("127.0.0.1", 1883))
    cases = [
        (default_options(broadcasters=[]), 2, ["no broadcaster", "Configuration tab"]),
        (default_options(payload="fancy"), 2, ["option payload: must be normalized or raw"]),
        (default_options(broadcasters=[{"name": "alice", "token": ""}]), 2,
         ["broadcasters #1 (alice): the token is missing"]),
        (default_options(broadcasters=[{"name": "alice", "token": "a"},
                                       {"name": "alice", "token": "b"}]), 2,
         ["\"alice\" is listed twice"]),
        (default_options(base_topic="cb ; x"), 2, ["option base_topic: must not contain ';'"]),
        (default_options(mqtt_host="mqtt://broker.lan"), 2, ["mqtt_host: a host name"]),
        (default_options(log_level=3), 2, ["option log_level: must be text"]),
        (None, 2, ["options.json does not exist"]),
    ]
    for opts, status, phrases in cases:
        p = Addon(opts, sup).run()
        assert_clear_error(p, status, *phrases)


def test_the_bridge_judges_what_it_owns():
    """A broadcaster name the bridge refuses (SPEC: [A-Za-z0-9_-]) stops it
    at start with its own message: one rule in one place."""
    sup = supervisor(fake_supervisor.mqtt_service("127.0.0.1", cbtest.free_port()))
    opts = default_options(broadcasters=[{"name": "al ice", "token": TOKENS["alice"]}])
    p = Addon(opts, sup).run()
    assert p.returncode == 2, p.describe()
    assert "al ice" in p.stderr_text(), p.describe()
    cbtest.assert_no_secret(p.stderr_text(), TOKENS["alice"], "the bridge's message")


if __name__ == "__main__":
    if not os.path.exists(ENTRYPOINT):
        cbtest.skip_now("no %s" % ENTRYPOINT)
    cbtest.run([test_two_broadcasters_from_the_supervisor, test_options_set_by_hand_win,
                test_broker_set_by_hand_skips_the_supervisor, test_missing_broker_is_a_clear_error,
                test_wrong_supervisor_token_is_refused, test_invalid_options_are_clear_errors,
                test_the_bridge_judges_what_it_owns])
