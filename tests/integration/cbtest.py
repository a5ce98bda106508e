"""Shared helpers for the integration tests (Python 3 standard library).

This file owns what every end-to-end test needs and nothing test-specific:
free ports, child processes that are always cleaned up (even when the test
crashes or is killed), throwaway certificates made with the openssl command,
a real mosquitto broker (plain and TLS listeners) that can be stopped and
restarted, a recording MQTT subscriber built on mosquitto_sub, a TCP
listener that records who connects, the fake Events API (in-process or as a
separate process with its control API), and a tiny runner that prints one
line per test and a summary, and exits 77 when everything was skipped.

Typical test file:

    import cbtest
    def test_something():
        tail = cbtest.tail_program()      # skips (77) when not built
        with cbtest.fake_api(...) as api: ...
    if __name__ == "__main__":
        cbtest.run([test_something])

Processes should be started from the main thread: they are tied to it with
PR_SET_PDEATHSIG, so they die with the test even if it is SIGKILLed.
"""

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fake_api as _fake_api_mod  # noqa: E402  (needs HERE on sys.path)

SKIP_EXIT = 77
KEEP_TMP = os.environ.get("CBEV_KEEP_TMP") == "1"


# ---------------------------------------------------------------------------
# Skipping

class Skip(Exception):
    """Raised inside a test to skip it (the runner reports it)."""


def skip(message):
    """Skips the current test with a clear message. Outside run() this exits
    the whole program with 77 (ctest's SKIP_RETURN_CODE)."""
    raise Skip(message)


def _excepthook(etype, value, tb):
    # skip() called outside run(): a skipped program, not a crash.
    if issubclass(etype, Skip):
        skip_now(str(value))
    sys.__excepthook__(etype, value, tb)


sys.excepthook = _excepthook


def skip_now(message):
    print("SKIP: %s" % message, flush=True)
    _cleanup_all()
    sys.exit(SKIP_EXIT)


def require_tool(name):
    """The path of an installed program, or skip."""
    path = shutil.which(name)
    if not path:
        skip("%s is not installed" % name)
    return path


def _find_built(env_name, rel_path):
    path = os.environ.get(env_name)
    if path:
        return path
    # Run by hand: look in CBEV_BUILD_DIR, then in build*/ of the source tree.
    candidates = []
    if os.environ.get("CBEV_BUILD_DIR"):
        candidates.append(os.path.join(os.environ["CBEV_BUILD_DIR"], rel_path))
    src = os.environ.get("CBEV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
    for d in sorted(os.listdir(src)):
        if d.startswith("build"):
            candidates.append(os.path.join(src, d, rel_path))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return None


def tail_program():
    """The cbevents-tail binary ($CBEVENTS_TAIL), or skip."""
    path = _find_built("CBEVENTS_TAIL", "src/tail/cbevents-tail")
    if not path or not os.access(path, os.X_OK):
        skip("cbevents-tail is not built (CBEVENTS_TAIL=%s)" % path)
    return path


def bridge_program():
    """The cb2mqtt binary ($CB2MQTT), or skip."""
    path = _find_built("CB2MQTT", "src/bridge/cb2mqtt")
    if not path or not os.access(path, os.X_OK):
        skip("cb2mqtt is not built (CB2MQTT=%s)" % path)
    return path


# ---------------------------------------------------------------------------
# Temporary files, ports

_tmpdirs = []


def tempdir(prefix="cbtest-"):
    """A new directory removed at exit (kept when CBEV_KEEP_TMP=1)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    """Waits until something accepts TCP connections on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError("%s exited (%s) before listening on %d:\n%s" %
                               (proc.name, proc.returncode, port, proc.stderr_text()[-2000:]))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on %s:%d after %.1f s" % (host, port, timeout))


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Processes

_procs = []
_cleanups = []


try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


def _pdeathsig():
    # Runs in the child between fork and exec (so nothing here may load
    # libraries or take locks): die with the parent thread.
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Process:
    """A child process whose stdout and stderr go to files (so they never
    fill a pipe), stopped for sure at the end of the test or program."""

    def __init__(self, argv, env=None, cwd=None, name=None, stdin=None,
                 extra_env=None, clean_env=False):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.dir = tempdir("cbtest-%s-" % self.name)
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        if env is None:
            env = {} if clean_env else dict(os.environ)
        env = dict(env)
        env.update(extra_env or {})
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=self._out, stderr=self._err,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            preexec_fn=_pdeathsig)
        if stdin is not None:
            self.popen.stdin.write(stdin if isinstance(stdin, bytes) else stdin.encode())
            self.popen.stdin.close()
        self.ended = None
        _procs.append(self)

    @property
    def pid(self):
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        """Waits for the exit; returns the status. Raises TimeoutError (the
        process keeps running) when it does not end in time."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("%s (pid %d) still running after %.1f s" %
                               (self.name, self.pid, timeout)) from None
        if self.ended is None:
            self.ended = time.monotonic()
        return rc

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends sig, waits up to timeout, then SIGKILLs. Returns the status."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self.ended is None:
            self.ended = time.monotonic()
        self._close_files()
        return self.popen.returncode

    def _close_files(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def stdout_bytes(self):
        with open(self.stdout_path, "rb") as f:
            return f.read()

    def stdout_text(self):
        return self.stdout_bytes().decode("utf-8", "replace")

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_lines(self):
        """Complete lines of stdout so far (a partial last line is left out)."""
        data = self.stdout_text()
        lines = data.split("\n")
        return [ln for ln in lines[:-1]]

    def wait_stdout_lines(self, count, timeout=10.0):
        return wait_until(lambda: len(self.stdout_lines()) >= count and self.stdout_lines(),
                          timeout, what="%d lines on %s's stdout" % (count, self.name))

    def describe(self):
        """stdout/stderr tails for an assertion message."""
        return "%s rc=%s\n--- stderr (tail) ---\n%s\n--- stdout (tail) ---\n%s" % (
            self.name, self.returncode, self.stderr_text()[-3000:], self.stdout_text()[-1500:])


def run_process(argv, timeout=30.0, **kw):
    """Runs argv to completion; returns the Process (with returncode)."""
    p = Process(argv, **kw)
    try:
        p.wait(timeout)
    finally:
        p.stop()
    return p


def on_cleanup(fn):
    """Registers fn to run when the current test (or the program) ends."""
    _cleanups.append(fn)
    return fn


def _cleanup_from(nprocs, ncleanups):
    while len(_cleanups) > ncleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:  # cleanup must go on
            traceback.print_exc()
    while len(_procs) > nprocs:
        p = _procs.pop()
        try:
            p.stop(timeout=3.0)
        except Exception:
            traceback.print_exc()


def _cleanup_all():
    _cleanup_from(0, 0)
    if not KEEP_TMP:
        while _tmpdirs:
            shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


atexit.register(_cleanup_all)


def _on_term(signum, frame):
    # ctest's timeout and Ctrl-C: leave through sys.exit so atexit runs.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


# ---------------------------------------------------------------------------
# Throwaway certificates (openssl command)

class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost/::1 and a client
    certificate, all in one directory. Attributes are file paths."""

    def __init__(self, directory=None, hosts=("127.0.0.1", "localhost", "::1")):
        openssl = require_tool("openssl")
        self.dir = directory or tempdir("cbtest-pki-")
        d = self.dir
        self.ca_cert, self.ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        _openssl(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.ca_key,
                 "-out", self.ca_cert, "-days", "3", "-subj", "/CN=cbtest throwaway CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        san = ",".join(("IP:" if _is_ip(h) else "DNS:") + h for h in hosts)
        self.server_cert, self.server_key = self.issue("server", hosts[0], san, "serverAuth")
        self.client_cert, self.client_key = self.issue("client", "cbtest-client", None,
                                                       "clientAuth")

    def issue(self, name, cn, san, eku):
        """Issues <name>.pem/<name>.key signed by the CA; returns the paths."""
        openssl = shutil.which("openssl")
        d = self.dir
        cert, key, csr = (os.path.join(d, name + ext) for ext in (".pem", ".key", ".csr"))
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage=%s\n" % eku)
            if san:
                f.write("subjectAltName=%s\n" % san)
        _openssl(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", "/CN=%s" % cn)
        _openssl(openssl, "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey",
                 self.ca_key, "-CAcreateserial", "-out", cert, "-days", "3",
                 "-extfile", ext)
        return cert, key


def _is_ip(host):
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except OSError:
            pass
    return False


def _openssl(*argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl failed: %s\n%s" % (" ".join(argv[1:3]),
                                                       r.stderr.decode(errors="replace")))


# ---------------------------------------------------------------------------
# mosquitto

class Mosquitto:
    """A real mosquitto on free ports of 127.0.0.1 with a generated config.

    port: plain listener. With tls (a Pki), tls_port is a second listener
    using the server certificate; require_client_cert asks for a client
    certificate there. users {name: password} turns anonymous access off."""

    def __init__(self, tls=None, require_client_cert=False, users=None, extra_conf=()):
        self.program = require_tool("mosquitto")
        self.dir = tempdir("cbtest-mosquitto-")
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = ["per_listener_settings false", "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true",
                 "listener %d 127.0.0.1" % self.port]
        if tls:
            lines += ["listener %d 127.0.0.1" % self.tls_port,
                      "cafile %s" % tls.ca_cert, "certfile %s" % tls.server_cert,
                      "keyfile %s" % tls.server_key,
                      "require_certificate %s" % ("true" if require_client_cert else "false")]
        if users:
            pwfile = os.path.join(self.dir, "passwd")
            with open(pwfile, "w") as f:
                f.write("")
            for u, pw in users.items():
                subprocess.run([require_tool("mosquitto_passwd"), "-b", pwfile, u, pw],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            lines += ["allow_anonymous false", "password_file %s" % pwfile]
        else:
            lines += ["allow_anonymous true"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root mosquitto would switch to the "mosquitto" user, which
            # cannot read our private temporary files.
            lines.append("user root")
        lines += list(extra_conf)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "mqtts://127.0.0.1:%d" % self.tls_port

    def start(self, timeout=10.0):
        self.starts += 1
        self.proc = Process([self.program, "-c", self.conf],
                            name="mosquitto-%d" % self.starts)
        wait_port(self.port, timeout=timeout, proc=self.proc)
        if self.tls_port:
            wait_port(self.tls_port, timeout=timeout, proc=self.proc)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.stop(sig)

    def kill(self):
        """Stops the broker abruptly (no clean disconnects)."""
        self.stop(signal.SIGKILL)

    def restart(self, down_s=0.0):
        """Stops, optionally stays away down_s seconds, starts on the same ports."""
        self.stop()
        if down_s:
            time.sleep(down_s)
        return self.start()

    def log(self):
        return self.proc.stderr_text() if self.proc else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def client_args(self, tls=False, client_cert=False, user=None, password=None):
        """Connection arguments for mosquitto_pub/mosquitto_sub."""
        args = ["-h", "127.0.0.1", "-p", str(self.tls_port if tls else self.port)]
        if tls:
            args += ["--cafile", self.tls.ca_cert]
            if client_cert:
                args += ["--cert", self.tls.client_cert, "--key", self.tls.client_key]
        if user is not None:
            args += ["-u", user, "-P", password or ""]
        return args


class Message:
    """One received MQTT message: topic, payload (bytes), qos, retained, time."""

    __slots__ = ("topic", "payload", "qos", "retained", "time")

    def __init__(self, topic, payload, qos, retained, t):
        self.topic, self.payload, self.qos, self.retained, self.time = (
            topic, payload, qos, retained, t)

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        p = self.payload if len(self.payload) < 120 else self.payload[:117] + b"..."
        return "Message(%r, %r, qos=%d, retained=%s)" % (self.topic, p, self.qos, self.retained)


def topic_matches(pattern, topic):
    """MQTT filter matching (+ and #)."""
    pp, tt = pattern.split("/"), topic.split("/")
    for i, p in enumerate(pp):
        if p == "#":
            return True
        if i >= len(tt) or (p != "+" and p != tt[i]):
            return False
    return len(pp) == len(tt)


class Subscriber:
    """Records every message on topics (default '#') through mosquitto_sub.

    The format '%r %q %t %x' keeps the retained flag, the QoS and the exact
    payload bytes (hex). start() returns once the subscription is live (a
    probe message has come back)."""

    PROBE = "cbtest/probe/"

    def __init__(self, broker, topics=("#",), qos=2, protocol=5, tls=False,
                 client_cert=False, user=None, password=None, extra=()):
        self.broker = broker
        self.argv = [require_tool("mosquitto_sub")] + broker.client_args(
            tls, client_cert, user, password)
        self.argv += ["-V", "5" if protocol == 5 else "311", "-q", str(qos),
                      "-i", "cbtest-sub-" + uuid.uuid4().hex[:8], "-F", "%r %q %t %x"]
        # The probe topic is always subscribed, whatever topics are asked:
        # start() uses it to know the subscription is live.
        self._probe = self.PROBE + uuid.uuid4().hex
        for t in list(topics) + [self._probe]:
            self.argv += ["-t", t]
        self.argv += list(extra)
        self._pub_args = broker.client_args(tls, client_cert, user, password)
        self._lock = threading.Lock()
        self._msgs = []
        self._offset = 0
        self._partial = b""
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = Process(self.argv, name="mosquitto_sub")
        probe = self._probe
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError("mosquitto_sub exited: " + self.proc.describe())
            publish(self.broker, probe, b"probe", qos=0, args=self._pub_args)
            try:
                wait_until(lambda: any(m.topic == probe for m in self._read(True)),
                           timeout=0.5, what="probe")
                return self
            except AssertionError:
                continue
        raise TimeoutError("subscriber not ready after %.1f s" % timeout)

    def stop(self):
        if self.proc:
            self.proc.stop()
        self._read(True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _read(self, include_probes=False):
        with self._lock:
            with open(self.proc.stdout_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            data = self._partial + data
            lines = data.split(b"\n")
            self._partial = lines.pop()
            now = time.monotonic()
            for ln in lines:
                m = _parse_sub_line(ln, now)
                if m:
                    self._msgs.append(m)
            msgs = list(self._msgs)
        if include_probes:
            return msgs
        return [m for m in msgs if not m.topic.startswith(self.PROBE)]

    def messages(self, topic=None):
        """Messages received so far, optionally those matching a filter."""
        msgs = self._read()
        if topic is not None:
            msgs = [m for m in msgs if topic_matches(topic, m.topic)]
        return msgs

    def wait_for(self, predicate, timeout=10.0, what="a matching message"):
        """Waits for the first message where predicate(m) is true."""
        def find():
            for m in self.messages():
                if predicate(m):
                    return m
            return None
        return wait_until(find, timeout, what=what)

    def wait_count(self, topic, count, timeout=10.0):
        """Waits until count messages matched topic; returns them all."""
        return wait_until(lambda: (len(self.messages(topic)) >= count
                                   and self.messages(topic)),
                          timeout, what="%d messages on %s" % (count, topic))

    def clear(self):
        with self._lock:
            self._msgs = []


def _parse_sub_line(line, now):
    # "<retained> <qos> <topic> <hex payload>"; the topic may contain spaces,
    # the hex payload never does.
    try:
        head, _, rest = line.partition(b" ")
        qos, _, rest = rest.partition(b" ")
        topic, _, hexpayload = rest.rpartition(b" ")
        return Message(topic.decode("utf-8", "replace"), bytes.fromhex(hexpayload.decode()),
                       int(qos), head == b"1", now)
    except ValueError:
        return None


def publish(broker, topic, payload, retain=False, qos=1, args=None, timeout=10.0):
    """Publishes one message with mosquitto_pub (payload str or bytes; None
    sends an empty message, which with retain clears a retained one)."""
    argv = [require_tool("mosquitto_pub")] + (args or broker.client_args())
    argv += ["-t", topic, "-q", str(qos)]
    if retain:
        argv.append("-r")
    if payload is None or payload == b"" or payload == "":
        argv.append("-n")
        data = None
    else:
        argv += ["-s"]
        data = payload if isinstance(payload, bytes) else payload.encode()
    r = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("mosquitto_pub failed: %s" % r.stderr.decode(errors="replace"))


# ---------------------------------------------------------------------------
# A listener that records connections (for hostile nextUrl tests)

class ConnectionRecorder:
    """Listens on 127.0.0.1:port, records every connection (time, peer and
    the first bytes sent), answers nothing and closes it."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        on_cleanup(self.close)

    def _loop(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(1.0)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.connections.append({"time": time.time(), "peer": peer, "data": data})
            conn.close()

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


# ---------------------------------------------------------------------------
# The fake Events API

def fake_api(broadcasters=None, **kw):
    """An in-process fake_api.FakeApi, started, stopped after the test."""
    api = fake_api_module().FakeApi(broadcasters, **kw).start()
    on_cleanup(api.stop)
    return api


def fake_api_module():
    return _fake_api_mod


class FakeApiProcess:
    """fake_api.py run as its own process; .control drives it over HTTP."""

    def __init__(self, args=(), timeout=10.0):
        d = tempdir("cbtest-fakeapi-")
        port_file = os.path.join(d, "port")
        self.proc = Process([sys.executable, "-u", os.path.join(HERE, "fake_api.py"),
                             "--port", "0", "--port-file", port_file] + list(args),
                            name="fake_api")
        wait_until(lambda: os.path.exists(port_file) or not self.proc.alive(), timeout,
                   what="fake_api's port file")
        if not self.proc.alive():
            raise RuntimeError("fake_api exited: " + self.proc.describe())
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.scheme = "https" if "--tls" in args else "http"
        self.base_url = "%s://127.0.0.1:%d/events" % (self.scheme, self.port)
        self.control = Control("%s://127.0.0.1:%d" % (self.scheme, self.port))

    def stop(self):
        return self.proc.stop()


class Control:
    """Client of the fake API's /_control/ endpoints (see fake_api.py)."""

    def __init__(self, root, cafile=None):
        self.root = root.rstrip("/")
        self._ctx = None
        if root.startswith("https"):
            import ssl
            self._ctx = ssl.create_default_context(cafile=cafile)
            if cafile is None:
                self._ctx.check_hostname = False
                self._ctx.verify_mode = ssl.CERT_NONE

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.root + "/_control/" + path, data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self._ctx) as r:
            return json.loads(r.read())

    def add_events(self, broadcaster, events):
        return self._call("POST", "events", {"broadcaster": broadcaster,
                                             "events": events})["ids"]

    def generate(self, broadcaster, count, methods=None):
        g = {"count": count}
        if methods:
            g["methods"] = list(methods)
        return self._call("POST", "events", {"broadcaster": broadcaster,
                                             "generate": g})["ids"]

    def add_faults(self, broadcaster, faults):
        return self._call("POST", "faults", {"broadcaster": broadcaster,
                                             "faults": list(faults)})["queued"]

    def requests(self, broadcaster=None, since=0):
        q = {"since": since}
        if broadcaster:
            q["broadcaster"] = broadcaster
        return self._call("GET", "requests?" + urllib.parse.urlencode(q))["requests"]

    def reset(self):
        return self._call("POST", "reset", {})

    def stats(self):
        return self._call("GET", "stats")

    def set_broadcaster(self, name, token):
        return self._call("POST", "broadcasters", {"name": name, "token": token})

    def configure(self, batch_size=None, max_wait=None, fault_rate=None):
        body = {k: v for k, v in (("batch_size", batch_size), ("max_wait", max_wait),
                                  ("fault_rate", fault_rate)) if v is not None}
        return self._call("POST", "config", body)


# ---------------------------------------------------------------------------
# Secrets and JSON lines

def secret_forms(token):
    """The ways a token can leak: raw, and percent-encoded with upper- and
    lower-case hex (only forms that differ from the raw one)."""
    forms = {token}
    enc = urllib.parse.quote(token, safe="")
    forms.add(enc)
    forms.add(_lower_hex(enc))
    forms.add(urllib.parse.quote_plus(token, safe=""))
    forms.add(urllib.parse.quote(token, safe="/"))
    return sorted(f for f in forms if f)


def _lower_hex(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "%" and i + 2 < len(s) + 1:
            out.append(s[i:i + 3].lower())
            i += 3
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def assert_no_secret(text, token, where):
    for form in secret_forms(token):
        assert form not in text, "token (as %r) leaked into %s" % (form, where)


def json_lines(text):
    """Parses one JSON object per line; fails on anything else."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("line %d is not JSON (%s): %r" % (n, e, line[:200]))
        assert isinstance(obj, dict), "line %d is not a JSON object: %r" % (n, line[:200])
        out.append(obj)
    return out


def tail_env(token=None, token_file=None, events_url=None, extra=None):
    """An environment for cbevents-tail: ours minus any CB_* variable, plus
    the token source asked for, plus ASan/UBSan options that fail loudly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if token is not None:
        env["CB_TOKEN"] = token
    if token_file is not None:
        env["CB_TOKEN_FILE"] = token_file
    if events_url is not None:
        env["CB_EVENTS_URL"] = events_url
    env.update(extra or {})
    return env


def start_tail(args, token=None, **kw):
    """Starts cbevents-tail with args (a list) and the token in CB_TOKEN."""
    env = tail_env(token=token, token_file=kw.pop("token_file", None),
                   events_url=kw.pop("events_url", None), extra=kw.pop("extra_env", None))
    return Process([tail_program()] + list(args), env=env, name="cbevents-tail", **kw)


# ---------------------------------------------------------------------------
# Runner

def run(tests, name=None):
    """Runs the test functions in order; one line each, then a summary.
    Exit status: 0 all passed (some may be skipped), 1 any failed, 77 all
    skipped."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    only = os.environ.get("CBTEST_ONLY")  # run a single test by hand
    passed, failed, skipped = [], [], []
    t_all = time.monotonic()
    for fn in tests:
        if only and fn.__name__ != only:
            continue
        nprocs, ncleanups = len(_procs), len(_cleanups)
        t0 = time.monotonic()
        try:
            fn()
            passed.append(fn.__name__)
            print("ok   %-40s %6.1f s" % (fn.__name__, time.monotonic() - t0), flush=True)
        except Skip as e:
            skipped.append(fn.__name__)
            print("skip %-40s %s" % (fn.__name__, e), flush=True)
        except Exception:  # AssertionError and anything unexpected
            failed.append(fn.__name__)
            print("FAIL %-40s %6.1f s" % (fn.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
        finally:
            _cleanup_from(nprocs, ncleanups)
    print("%s: %d passed, %d failed, %d skipped in %.1f s" % (
        name, len(passed), len(failed), len(skipped), time.monotonic() - t_all), flush=True)
    _cleanup_all()
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP_EXIT)
    sys.exit(0)


# ---------------------------------------------------------------------------
# SPEC section 3: what a normalized event must look like

EVENT_TYPES = {
    "broadcastStart": "broadcast_start", "broadcastStop": "broadcast_stop",
    "roomSubjectChange": "room_subject_change", "userEnter": "user_enter",
    "userLeave": "user_leave", "follow": "follow", "unfollow": "unfollow",
    "fanclubJoin": "fanclub_join", "chatMessage": "chat_message",
    "privateMessage": "private_message", "tip": "tip",
    "mediaPurchase": "media_purchase",
}

USER_FIELDS = {
    "username": "username", "colorGroup": "color_group", "fcAutoRenew": "fc_auto_renew",
    "gender": "gender", "hasDarkmode": "has_darkmode", "hasTokens": "has_tokens",
    "inFanclub": "in_fanclub", "inPrivateShow": "in_private_show",
    "isBroadcasting": "is_broadcasting", "isFollower": "is_follower", "isMod": "is_mod",
    "isOwner": "is_owner", "isSilenced": "is_silenced", "isSpying": "is_spying",
    "language": "language", "recentTips": "recent_tips", "subgender": "subgender",
}


def iso_timestamp(event_id):
    """'1755376903836-0' -> '2025-08-16T20:41:43.836Z'."""
    ms = int(event_id.split("-")[0])
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def assert_normalized(out, upstream, expose_anon=False):
    """Asserts that out (a parsed JSON line) is the SPEC section 3 form of
    upstream (the event dict the fake API served)."""
    obj = upstream["object"]
    method = upstream["method"]
    where = "event %s (%s)" % (upstream["id"], method)
    assert out.get("id") == upstream["id"], "%s: id %r" % (where, out.get("id"))
    assert out.get("event_type") == EVENT_TYPES[method], "%s: event_type %r" % (
        where, out.get("event_type"))
    assert out.get("broadcaster") == obj["broadcaster"], "%s: broadcaster" % where
    assert out.get("timestamp") == iso_timestamp(upstream["id"]), "%s: timestamp %r" % (
        where, out.get("timestamp"))
    anon_hidden = method == "tip" and obj["tip"]["isAnon"] and not expose_anon
    if "user" in obj:
        assert "user" in out, "%s: no user key" % where
        if anon_hidden:
            assert out["user"] is None, "%s: anonymous tipper exposed: %r" % (where, out["user"])
        else:
            u = out["user"]
            assert isinstance(u, dict), "%s: user %r" % (where, u)
            for up, key in USER_FIELDS.items():
                want = obj["user"][up]
                if up == "subgender" and want == "":
                    want = None
                assert u.get(key, "<missing>") == want, "%s: user.%s = %r, want %r" % (
                    where, key, u.get(key, "<missing>"), want)
    if method == "tip":
        t = out.get("tip")
        want_msg = obj["tip"]["message"]
        if want_msg.startswith("| "):
            want_msg = want_msg[2:]
        assert t == {"tokens": obj["tip"]["tokens"], "is_anon": obj["tip"]["isAnon"],
                     "message": want_msg}, "%s: tip %r" % (where, t)
    if method in ("chatMessage", "privateMessage"):
        m, up = out.get("message"), obj["message"]
        want = {"text": up["message"], "color": up.get("color"), "bg_color": up.get("bgColor"),
                "font": up.get("font"), "orig": up.get("orig"), "from_user": up.get("fromUser"),
                "to_user": up.get("toUser")}
        assert m == want, "%s: message %r, want %r" % (where, m, want)
    if method == "mediaPurchase":
        m, up = out.get("media"), obj["media"]
        want = {"id": str(up["id"]), "name": up["name"], "type": up["type"],
                "tokens": up["tokens"]}
        assert m == want, "%s: media %r, want %r" % (where, m, want)
    if method == "roomSubjectChange":
        assert out.get("subject") == obj["subject"], "%s: subject %r" % (where, out.get("subject"))


# ---------------------------------------------------------------------------
# Upstream shapes for tests that script events by hand

def api_user(name, **over):
    """A user object as the Events API sends it (camelCase, every field)."""
    u = {"username": name, "colorGroup": "tr", "fcAutoRenew": False, "gender": "m",
         "hasDarkmode": True, "hasTokens": True, "inFanclub": False,
         "inPrivateShow": False, "isBroadcasting": False, "isFollower": True,
         "isMod": False, "isOwner": False, "isSilenced": False, "isSpying": False,
         "language": "en", "recentTips": "some", "subgender": ""}
    u.update(over)
    return u


def api_event(method, b="alice", **obj):
    """An event for FakeApi.add_events: method and an object of broadcaster
    b plus obj (user=..., tip=..., ...); the fake API assigns the id."""
    o = {"broadcaster": b}
    o.update(obj)
    return {"method": method, "object": o}


# ---------------------------------------------------------------------------
# The bridge (cb2mqtt) for the TLS, chaos and Node-RED tests

def bridge_env(broker_url, api_url, state_dir, broadcasters, extra=None):
    """An environment for cb2mqtt: ours minus any CB2MQTT_*/CB_* variable,
    then the broker URL, the API, the state dir, short timeouts and
    backoffs (tests), discovery off, debug logs (so a leak at any level
    shows), and broadcasters [(name, token)] as CB2MQTT_BROADCASTERS +
    CB2MQTT_BROADCASTER_<NAME>_TOKEN. extra overrides any of it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CB2MQTT_") and not k.startswith("CB_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.update({
        "CB2MQTT_MQTT_URL": broker_url,
        "CB2MQTT_MQTT_CLIENT_ID": "cb2mqtt-" + uuid.uuid4().hex[:8],
        "CB2MQTT_EVENTS_API": api_url,
        "CB2MQTT_EVENTS_STATE_DIR": state_dir,
        "CB2MQTT_EVENTS_TIMEOUT": "1",
        "CB2MQTT_EVENTS_RETRY_BACKOFF": "0.2",
        "CB2MQTT_EVENTS_RETRY_MAX_DELAY": "1",
        "CB2MQTT_HOMEASSISTANT_DISCOVERY": "false",
        "CB2MQTT_LOG_LEVEL": "debug",
        "CB2MQTT_BROADCASTERS": ",".join(n for n, _ in broadcasters),
    })
    for name, tok in broadcasters:
        env["CB2MQTT_BROADCASTER_%s_TOKEN" % name.upper().replace("-", "_")] = tok
    env.update(extra or {})
    return env


def start_bridge(env, args=(), name="cb2mqtt"):
    """Starts cb2mqtt (skips when it is not built) with env from bridge_env."""
    return Process([bridge_program()] + list(args), env=env, name=name)


def assert_no_secret_in_messages(messages, token, where="an MQTT message"):
    """No form of token in any topic or payload of messages."""
    for form in secret_forms(token):
        for m in messages:
            assert form.encode() not in m.payload and form not in m.topic, (
                "token (as %r) leaked into %s on %s" % (form, where, m.topic))
