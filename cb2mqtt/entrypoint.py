#!/usr/bin/python3
"""The Home Assistant add-on's entrypoint (installed as
/usr/local/bin/cb2mqtt-addon; Python 3 standard library only).

It turns the add-on's options into the bridge's settings and replaces
itself with the bridge:

1. reads /data/options.json (the Supervisor writes it from the add-on's
   Configuration tab, already checked against config.yaml's schema);
2. unless the broker is set by hand (mqtt_host), asks the Supervisor's
   services API for the MQTT broker (GET http://supervisor/services/mqtt
   with SUPERVISOR_TOKEN): host, port, TLS and credentials. An option set
   by hand (mqtt_port, mqtt_username, mqtt_password, mqtt_tls) wins over
   what the service says;
3. writes every secret (the broadcasters' tokens, the broker password) to
   its own file, 0600 in a 0700 directory owned by the bridge's user:
   never into the environment, argv or the INI;
4. writes the INI (/etc/cb2mqtt/cb2mqtt.ini, the bridge's default path, so
   that the image's HEALTHCHECK `cb2mqtt --healthcheck` finds state_dir);
5. keeps state in /data/cb2mqtt (the add-on's /data is owned by root, so
   the entrypoint runs as root, prepares the directories for uid 10001,
   drops to it and execs `cb2mqtt -c INI`: the bridge is PID 1, never root).

A wrong option or a missing broker is a configuration error: one clear
message on stderr and exit 2, so the add-on stops with the reason in its
log (what HA users know from other add-ons) instead of restarting over and
over; the Supervisor's watchdog, when the user turned it on, retries a
bounded number of times. A Supervisor that cannot be reached after about
half a minute is exit 1.

Settings beyond the add-on's options come from the bridge's own defaults.
The environment is passed to the bridge without SUPERVISOR_TOKEN (the
bridge has no business with the Supervisor) and without the CBADDON_*
variables below.

For tests only (never set by the Supervisor): CBADDON_SUPERVISOR_URL (the
Supervisor's address), CBADDON_DATA_DIR (/data), CBADDON_RUN_DIR
(/run/cb2mqtt, the secrets' parent), CBADDON_INI, CBADDON_BRIDGE (the
cb2mqtt program) and CBADDON_USER ("uid:gid" to drop to when root; empty:
stay who we are).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

PROG = "cb2mqtt-addon"
# The bridge reads each INI line whole up to this many bytes (config.h).
INI_LINE_MAX = 198
# How long the Supervisor may take to answer at boot before we give up.
SUPERVISOR_TRIES = 6
SUPERVISOR_TIMEOUT_S = 5

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


class AddonError(Exception):
    """A message for the user and the exit status that goes with it."""

    def __init__(self, message, status=EXIT_CONFIG):
        super().__init__(message)
        self.status = status


def log(level, message):
    # One text line on stderr: the Supervisor shows it in the add-on's Log tab.
    print("%s: %s: %s" % (PROG, level, message), file=sys.stderr, flush=True)


def settings_from_env():
    env = os.environ
    return {
        "supervisor": env.get("CBADDON_SUPERVISOR_URL", "http://supervisor").rstrip("/"),
        "data": env.get("CBADDON_DATA_DIR", "/data"),
        "run": env.get("CBADDON_RUN_DIR", "/run/cb2mqtt"),
        "ini": env.get("CBADDON_INI", "/etc/cb2mqtt/cb2mqtt.ini"),
        "bridge": env.get("CBADDON_BRIDGE", "/usr/local/bin/cb2mqtt"),
        "user": env.get("CBADDON_USER", "10001:10001"),
    }


# ---------------------------------------------------------------------------
# Options

def read_options(path):
    try:
        with open(path, encoding="utf-8") as f:
            opts = json.load(f)
    except FileNotFoundError:
        raise AddonError("%s does not exist (is this running as a Home Assistant add-on?)"
                         % path) from None
    except (OSError, ValueError) as e:
        raise AddonError("cannot read %s: %s" % (path, e)) from None
    if not isinstance(opts, dict):
        raise AddonError("%s is not a JSON object" % path)
    return opts


def _get(opts, key, kind, default=None):
    """opts[key] checked against kind (bool, int, str, list); None or absent
    gives default. The Supervisor has checked the schema already: this is
    for options.json written by hand, and it keeps errors readable."""
    value = opts.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise AddonError("option %s: must be %s" % (key, {bool: "true or false", int: "a number",
                                                          str: "text", list: "a list"}[kind]))
    return value


def _one_of(opts, key, choices, default):
    value = _get(opts, key, str, default)
    if value not in choices:
        raise AddonError("option %s: must be %s (got %s)" % (key, " or ".join(choices),
                                                             json.dumps(value)[:80]))
    return value


def ini_value(key, value):
    """value as one INI value: the bridge reads a line whole, cuts inline
    comments at ';' and trims blanks, so those cannot be written verbatim."""
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise AddonError("option %s: holds a control character or a line break" % key)
    if ";" in text or text != text.strip():
        raise AddonError("option %s: must not contain ';' or start or end with a blank" % key)
    return text


def parse_broadcasters(opts):
    items = _get(opts, "broadcasters", list, [])
    if not items:
        raise AddonError("no broadcaster: add one under broadcasters (name and token) in the "
                         "add-on's Configuration tab")
    out, seen = [], set()
    for n, item in enumerate(items, 1):
        where = "broadcasters #%d" % n
        if not isinstance(item, dict):
            raise AddonError("option %s: must have a name and a token" % where)
        name, token = item.get("name"), item.get("token")
        if not isinstance(name, str) or not name:
            raise AddonError("option %s: the name is missing" % where)
        # The bridge judges the name (SPEC: [A-Za-z0-9_-], 1..64); here it
        # only has to fit in a section header.
        name = ini_value(where + " name", name)
        if "[" in name or "]" in name:
            raise AddonError("option %s: the name %s holds a bracket" % (where, json.dumps(name)[:80]))
        if name in seen:
            raise AddonError("option %s: %s is listed twice" % (where, json.dumps(name)[:80]))
        if not isinstance(token, str) or not token.strip():
            # Never echo a token, not even a bad one.
            raise AddonError("option %s (%s): the token is missing" % (where, name))
        seen.add(name)
        out.append((name, token.strip()))
    return out


# ---------------------------------------------------------------------------
# The broker

def supervisor_mqtt(base_url, token):
    """The data of the Supervisor's mqtt service, or AddonError."""
    if not token:
        raise AddonError("no SUPERVISOR_TOKEN in the environment, so the MQTT service cannot be "
                         "asked: set mqtt_host (and credentials) in the Configuration tab")
    url = base_url + "/services/mqtt"
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    delay = 1.0
    for attempt in range(1, SUPERVISOR_TRIES + 1):
        try:
            with urllib.request.urlopen(req, timeout=SUPERVISOR_TIMEOUT_S) as r:
                body = r.read(1 << 20)
            status = 200
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read(1 << 20)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if attempt == SUPERVISOR_TRIES:
                raise AddonError("the Supervisor at %s does not answer (%s)" % (base_url, reason),
                                 EXIT_RUNTIME) from None
            log("warn", "the Supervisor does not answer (%s); retrying in %.0f s" % (reason, delay))
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
            continue
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        message = str(answer.get("message") or "")[:200]
        if status == 200 and answer.get("result") == "ok" and isinstance(answer.get("data"), dict):
            return answer["data"]
        if status == 400 and "not enabled" in message.lower():
            raise AddonError("no MQTT broker: the Supervisor offers no MQTT service. Install and "
                             "start the Mosquitto broker add-on, or set mqtt_host (and "
                             "credentials) in the Configuration tab")
        if status in (401, 403):
            raise AddonError("the Supervisor refused the MQTT service (HTTP %d%s)"
                             % (status, ": " + message if message else ""), EXIT_RUNTIME)
        raise AddonError("unexpected answer from the Supervisor's MQTT service (HTTP %d%s)"
                         % (status, ": " + message if message else ""), EXIT_RUNTIME)
    raise AssertionError("unreachable")


def broker_settings(opts, settings):
    """{url, username, password, origin}: hand-set options win, field by
    field; the Supervisor is asked only when mqtt_host is not set (its
    credentials belong to its broker, not to one set by hand)."""
    host = _get(opts, "mqtt_host", str)
    port = _get(opts, "mqtt_port", int)
    tls = _get(opts, "mqtt_tls", bool)
    username = _get(opts, "mqtt_username", str)
    password = _get(opts, "mqtt_password", str)
    if host is not None and not host.strip():
        host = None
    if host:
        if "://" in host or "/" in host:
            raise AddonError("option mqtt_host: a host name or address, not a URL (set mqtt_port "
                             "and mqtt_tls for the rest)")
        origin = "set by hand"
    else:
        data = supervisor_mqtt(settings["supervisor"], os.environ.get("SUPERVISOR_TOKEN", ""))
        host = data.get("host")
        if not isinstance(host, str) or not host:
            raise AddonError("the Supervisor's MQTT service names no host", EXIT_RUNTIME)
        if port is None:
            port = data.get("port")
        if tls is None:
            tls = bool(data.get("ssl"))
        if username is None and isinstance(data.get("username"), str):
            username = data["username"]
        if password is None and isinstance(data.get("password"), str):
            password = data["password"]
        origin = "from the Supervisor (%s)" % str(data.get("addon") or "mqtt service")[:64]
    tls = bool(tls)
    if port is None:
        port = 8883 if tls else 1883
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise AddonError("option mqtt_port: must be 1..65535")
    host = ini_value("mqtt_host", host)
    shown = "[%s]" % host if ":" in host else host
    return {
        "url": "%s://%s:%d" % ("mqtts" if tls else "mqtt", shown, port),
        "username": ini_value("mqtt_username", username) if username else None,
        "password": password or None,
        "origin": origin,
    }


# ---------------------------------------------------------------------------
# Files

def make_private_dir(path, owner):
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.path.islink(path) or not os.path.isdir(path):
        raise AddonError("%s is not a directory" % path, EXIT_RUNTIME)
    if owner:
        os.chown(path, *owner)
    os.chmod(path, 0o700)


def write_private(path, text, owner):
    """text to path, 0600, owned by owner (None: by us), not through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        if owner:
            os.fchown(fd, *owner)
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_state_dir(path, owner):
    """state_dir for the bridge's user. A state_dir left by an older run as
    another user gets its files handed over (flat: the bridge writes no
    subdirectories), never following links."""
    make_private_dir(path, owner)
    if not owner:
        return
    for name in os.listdir(path):
        p = os.path.join(path, name)
        st = os.lstat(p)
        if (st.st_uid, st.st_gid) != owner:
            os.lchown(p, *owner)


def write_secrets(directory, broadcasters, broker, owner):
    """One file per secret; files of an earlier run are removed first (a
    broadcaster removed from the options leaves nothing behind)."""
    make_private_dir(directory, owner)
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    paths = {}
    # By position, not by name: a name never becomes part of a path here.
    for n, (name, token) in enumerate(broadcasters, 1):
        p = os.path.join(directory, "broadcaster-%d.token" % n)
        write_private(p, token + "\n", owner)
        paths[name] = p
    mqtt_password = None
    if broker["password"]:
        mqtt_password = os.path.join(directory, "mqtt.password")
        write_private(mqtt_password, broker["password"] + "\n", owner)
    return paths, mqtt_password


def build_ini(opts, settings, broadcasters, broker, token_files, password_file):
    publish = _get(opts, "publish", list, [])
    for p in publish:
        if not isinstance(p, str):
            raise AddonError("option publish: must be a list of event types")
    lines = [
        "; Written by the cb2mqtt add-on at every start from %s/options.json." % settings["data"],
        "; Edits here are lost: change the add-on's options instead. No secret is here.",
        "[mqtt]",
        "url = " + broker["url"],
    ]
    if broker["username"]:
        lines.append("username = " + broker["username"])
    if password_file:
        lines.append("password_file = " + password_file)
    lines += [
        "base_topic = " + ini_value("base_topic", _get(opts, "base_topic", str, "cb")),
        "",
        "[events]",
        "publish = " + (ini_value("publish", ",".join(publish)) if publish else "all"),
        "payload = " + _one_of(opts, "payload", ("normalized", "raw"), "normalized"),
        "expose_anonymous_tippers = %s" % str(
            _get(opts, "expose_anonymous_tippers", bool, False)).lower(),
        "state_dir = " + os.path.join(settings["data"], "cb2mqtt"),
        "",
        "[homeassistant]",
        "discovery = %s" % str(_get(opts, "discovery", bool, True)).lower(),
        "prefix = " + ini_value("discovery_prefix",
                                _get(opts, "discovery_prefix", str, "homeassistant")),
        "",
        "[log]",
        "level = " + _one_of(opts, "log_level", ("error", "warn", "info", "debug"), "info"),
        "format = text",
    ]
    metrics_port = _get(opts, "metrics_port", int)
    if metrics_port is not None:
        if not 1 <= metrics_port <= 65535:
            raise AddonError("option metrics_port: must be 1..65535")
        # Only when set: a bridge without [metrics] support refuses the section.
        lines += ["", "[metrics]", "listen = :%d" % metrics_port]
    for name, _ in broadcasters:
        lines += ["", "[broadcaster:%s]" % name, "token_file = " + token_files[name]]
    for line in lines:
        if len(line.encode("utf-8")) > INI_LINE_MAX:
            raise AddonError("an option is too long for the bridge's settings file (%s...)"
                             % line[:40])
    return "\n".join(lines) + "\n"


def parse_user(text):
    if not text:
        return None
    try:
        uid, _, gid = text.partition(":")
        return int(uid), int(gid or uid)
    except ValueError:
        raise AddonError("CBADDON_USER: must be uid:gid", EXIT_RUNTIME) from None


def bridge_environment():
    drop = ("SUPERVISOR_TOKEN", "HASSIO_TOKEN")
    return {k: v for k, v in os.environ.items()
            if k not in drop and not k.startswith("CBADDON_")}


# ---------------------------------------------------------------------------

def main():
    settings = settings_from_env()
    os.umask(0o077)
    owner = parse_user(settings["user"])
    if owner and os.geteuid() != 0:
        owner = None  # not root: the bridge runs as whoever we are
    opts = read_options(os.path.join(settings["data"], "options.json"))
    broadcasters = parse_broadcasters(opts)
    broker = broker_settings(opts, settings)
    try:
        make_private_dir(settings["run"], owner)
        token_files, password_file = write_secrets(os.path.join(settings["run"], "secrets"),
                                                   broadcasters, broker, owner)
        ini = build_ini(opts, settings, broadcasters, broker, token_files, password_file)
        prepare_state_dir(os.path.join(settings["data"], "cb2mqtt"), owner)
        ini_dir = os.path.dirname(settings["ini"]) or "."
        os.makedirs(ini_dir, exist_ok=True)
        # Readable by the bridge's user despite our umask: no secret inside.
        os.chmod(ini_dir, 0o755)
        tmp = settings["ini"] + ".tmp"
        write_private(tmp, ini, None)
        os.chmod(tmp, 0o644)  # no secret inside; the healthcheck reads it
        os.replace(tmp, settings["ini"])
    except OSError as e:
        raise AddonError("cannot prepare the bridge's files: %s" % e, EXIT_RUNTIME) from None

    log("info", "MQTT broker %s %s%s" % (broker["url"], broker["origin"],
                                         ", user " + broker["username"] if broker["username"]
                                         else ""))
    if _get(opts, "metrics_port", int) is not None:
        log("info", "metrics on port %d (needs a bridge with [metrics] listen)"
            % opts["metrics_port"])
    log("info", "starting cb2mqtt for %s" % ", ".join(n for n, _ in broadcasters))
    if owner:
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    argv = [settings["bridge"], "-c", settings["ini"]]
    try:
        os.execve(settings["bridge"], argv, bridge_environment())
    except OSError as e:
        raise AddonError("cannot start %s: %s" % (settings["bridge"], e), EXIT_RUNTIME) from None


if __name__ == "__main__":
    try:
        main()
    except AddonError as e:
        log("error", str(e))
        sys.exit(e.status)
