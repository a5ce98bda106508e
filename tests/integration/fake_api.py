#!/usr/bin/env python3
"""A fake Chaturbate Events API for the integration tests and the demo.

This file owns the fake server: real HTTP (or HTTPS) over sockets on
127.0.0.1, one ordered event stream per broadcaster, the long-poll and
error answers of SPEC section 1, a control API under /_control/ so that
tests in other processes can append events, queue faults and read back every
request received, random faults for the chaos test, and a scripted "show"
for the demo. Python 3 standard library only.

Run it by hand (see README.md) or import it:

    api = FakeApi(broadcasters={"alice": "tok"}, max_wait=1.0)
    api.start(); ...; api.stop()
"""

import argparse
import email.utils
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METHODS = (
    "broadcastStart", "broadcastStop", "roomSubjectChange", "userEnter",
    "userLeave", "follow", "unfollow", "fanclubJoin", "chatMessage",
    "privateMessage", "tip", "mediaPurchase",
)

# Statuses that SPEC section 1 lists as retried.
RETRIED_STATUSES = (429, 500, 502, 503, 504, 520, 521, 522, 523, 524)

# Reason texts in the style of the real API's {"status": ...} bodies.
STATUS_TEXT = {
    400: "Invalid request",
    401: "Unauthorized",
    403: "Forbidden: token not valid for this broadcaster",
    404: "Not found",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
    520: "Web server returned an unknown error",
    521: "Web server is down",
    522: "Connection timed out",
    523: "Origin is unreachable",
    524: "A timeout occurred",
}

WAITED_TOO_LONG = "waited too long for events"
DEFAULT_BATCH_SIZE = 100
MAX_TIMEOUT_S = 90
# The control API refuses bodies above this: it is for tests, not bulk data.
MAX_CONTROL_BODY = 64 * 1024 * 1024


def parse_id(text):
    """'1755376889458-3' -> (1755376889458, 3); None when not an id."""
    if not isinstance(text, str):
        return None
    ms, sep, seq = text.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        return None
    return (int(ms), int(seq))


def format_id(key):
    return "%d-%d" % key


# ---------------------------------------------------------------------------
# Realistic event objects (SPEC section 1)

NAMES = ("bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil",
         "trent", "victor", "walter", "xena_22", "yuki-chan")
CHAT = ("hi!", "hello everyone", "you look great", "lol", "what's the goal?",
        "brb", "ñandú 🦩 ünïcödé", "quote \" and backslash \\ test")
SUBJECTS = ("Happy Friday! #goal at 500 tokens", "Chill stream, say hi",
            "Q&A night", "Cooking show 🍝 [tip menu in bio]")


def make_user(rng, username, broadcaster=None, **overrides):
    """A user object with every field the API documents."""
    user = {
        "username": username,
        "colorGroup": rng.choice(("o", "tr", "p", "l", "g", "m", "f")),
        "fcAutoRenew": rng.random() < 0.3,
        "gender": rng.choice(("m", "f", "c", "t")),
        "hasDarkmode": rng.random() < 0.5,
        "hasTokens": rng.random() < 0.7,
        "inFanclub": rng.random() < 0.2,
        "inPrivateShow": False,
        "isBroadcasting": username == broadcaster,
        "isFollower": rng.random() < 0.4,
        "isMod": rng.random() < 0.1,
        "isOwner": username == broadcaster,
        "isSilenced": False,
        "isSpying": False,
        "language": rng.choice(("en", "de", "es", "fr", "ja")),
        "recentTips": rng.choice(("none", "few", "some", "lots", "tons")),
        "subgender": rng.choice(("", "", "", "tf", "tm")),
    }
    user.update(overrides)
    return user


def make_object(rng, method, broadcaster, username=None, **kw):
    """The `object` of an event of `method` for `broadcaster`.

    Keyword arguments pick details: tokens, anon, text, subject, media_id,
    media_type, to_user."""
    obj = {"broadcaster": broadcaster}
    if method in ("broadcastStart", "broadcastStop"):
        obj["user"] = make_user(rng, broadcaster, broadcaster)
        return obj
    if method == "roomSubjectChange":
        obj["subject"] = kw.get("subject", rng.choice(SUBJECTS))
        return obj
    username = username or rng.choice(NAMES)
    obj["user"] = make_user(rng, username, broadcaster)
    if method == "tip":
        text = kw.get("text")
        if text is None:
            text = rng.choice(("", "hi", "for the goal", "🎉"))
        obj["tip"] = {
            "tokens": kw.get("tokens", rng.choice((1, 5, 10, 25, 50, 100, 500))),
            "isAnon": bool(kw.get("anon", rng.random() < 0.2)),
            # The real API prefixes a tip note with "| " and sends "" for none.
            "message": ("| " + text) if text else "",
        }
    elif method in ("chatMessage", "privateMessage"):
        msg = {
            "message": kw.get("text", rng.choice(CHAT)),
            "color": rng.choice(("#494949", "#DC0000", "#0A5A83")),
            "bgColor": rng.choice((None, "#FFFFB3")),
            "font": rng.choice(("default", "Arial", "Comic Sans MS")),
        }
        if method == "privateMessage":
            msg["orig"] = msg["message"]
            msg["fromUser"] = username
            msg["toUser"] = kw.get("to_user", broadcaster)
        obj["message"] = msg
    elif method == "mediaPurchase":
        media_id = kw.get("media_id", rng.randint(1, 99999))
        # The docs say a number; some captures carry a string: emit both.
        if rng.random() < 0.5 and "media_id" not in kw:
            media_id = str(media_id)
        obj["media"] = {
            "id": media_id,
            "name": kw.get("name", rng.choice(("Beach set", "Behind the scenes",
                                               "Photo set 7"))),
            "type": kw.get("media_type", rng.choice(("photos", "video"))),
            "tokens": kw.get("tokens", rng.choice((25, 50, 100, 200))),
        }
    return obj


def scripted_show(broadcaster, rng):
    """A realistic broadcast as [(seconds from start, method, object)] over
    about 25 s: start, viewers coming and going, chat, tips (anonymous ones
    too), follows, a fan club join, a media purchase, a subject change, stop."""
    b = broadcaster
    steps = [
        (0.0, "broadcastStart", {}),
        (0.5, "roomSubjectChange", {"subject": "Hello world! Goal: 100 tokens"}),
        (1.5, "userEnter", {"username": "bob"}),
        (2.5, "userEnter", {"username": "carol"}),
        (3.5, "chatMessage", {"username": "bob", "text": "hi!"}),
        (4.5, "tip", {"username": "bob", "tokens": 25, "text": "hi", "anon": False}),
        (5.5, "userEnter", {"username": "dave"}),
        (6.5, "follow", {"username": "carol"}),
        (7.5, "tip", {"username": "dave", "tokens": 50, "text": "", "anon": True}),
        (8.5, "chatMessage", {"username": "carol", "text": "love the stream"}),
        (9.5, "privateMessage", {"username": "dave", "text": "psst"}),
        (10.5, "fanclubJoin", {"username": "carol"}),
        (11.5, "userEnter", {"username": "erin"}),
        (12.5, "tip", {"username": "erin", "tokens": 100, "text": "for the goal",
                       "anon": False}),
        (13.5, "mediaPurchase", {"username": "bob", "media_id": 42,
                                 "media_type": "photos", "tokens": 50}),
        (14.5, "roomSubjectChange", {"subject": "Goal reached! Thank you 🎉"}),
        (15.5, "userLeave", {"username": "dave"}),
        (16.5, "unfollow", {"username": "frank"}),
        (17.5, "tip", {"username": "carol", "tokens": 10, "text": "", "anon": True}),
        (18.5, "chatMessage", {"username": "erin", "text": "bye all"}),
        (19.5, "userLeave", {"username": "erin"}),
        (21.0, "userLeave", {"username": "carol"}),
        (22.5, "userLeave", {"username": "bob"}),
        (24.5, "broadcastStop", {}),
    ]
    out = []
    for at, method, kw in steps:
        kw = dict(kw)
        username = kw.pop("username", None)
        out.append((at, method, make_object(rng, method, b, username, **kw)))
    return out


# ---------------------------------------------------------------------------
# State

class _Event(dict):
    """A stored event with its JSON text made once, so serving a batch of
    thousands (the benchmarks) joins strings instead of encoding it anew."""
    __slots__ = ("text",)


class _Broadcaster:
    def __init__(self, name, token):
        self.name = name
        self.token = token
        self.keys = []      # (ms, seq) per stored item, strictly increasing
        self.items = []     # what is served (an event dict, or anything)
        self.faults = []    # queued faults for the next requests
        self.requests = 0


class FakeApi:
    """The fake Events API. Thread-safe; all public methods may be called
    while the server runs."""

    def __init__(self, broadcasters=None, host="127.0.0.1", port=0, tls=None,
                 batch_size=DEFAULT_BATCH_SIZE, max_wait=None, fault_rate=0.0,
                 seed=None, quiet=True):
        self.host = host
        self._want_port = port
        self._tls = tls                 # (certfile, keyfile) or None
        self.batch_size = batch_size
        self.max_wait = max_wait        # cap on a long-poll hold, seconds
        self.fault_rate = fault_rate
        self.quiet = quiet
        self._rng = random.Random(seed)
        self._fault_rng = random.Random(seed)
        self._cond = threading.Condition()
        self._bc = {}
        self._global_faults = []
        self._log = []
        self._tls_errors = []
        self._last_key = (0, 0)
        self._server = None
        self._thread = None
        self._stopping = False
        self._scenario_threads = []
        for name, token in (broadcasters or {"alice": "s3cr3t"}).items():
            self._bc[name] = _Broadcaster(name, token)

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        ctx = None
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self._tls[0], self._tls[1])
        self._server = _Server((self.host, self._want_port), _Handler, self, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-api", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def scheme(self):
        return "https" if self._tls else "http"

    @property
    def base_url(self):
        """The API base to give a client: <scheme>://127.0.0.1:PORT/events."""
        return "%s://%s:%d/events" % (self.scheme, self.host, self.port)

    def feed_url(self, name, token=None, timeout=None):
        token = self._bc[name].token if token is None else token
        url = "%s/%s/%s/" % (self.base_url, name, urllib.parse.quote(token, safe=""))
        if timeout is not None:
            url += "?timeout=%d" % timeout
        return url

    # -- control (also reachable over HTTP under /_control/) ---------------

    def set_broadcaster(self, name, token):
        """Adds a broadcaster or changes its token (e.g. a revoked token)."""
        with self._cond:
            if name in self._bc:
                self._bc[name].token = token
            else:
                self._bc[name] = _Broadcaster(name, token)

    def configure(self, batch_size=None, max_wait=None, fault_rate=None):
        with self._cond:
            if batch_size is not None:
                self.batch_size = int(batch_size)
            if max_wait is not None:
                self.max_wait = float(max_wait) if max_wait >= 0 else None
            if fault_rate is not None:
                self.fault_rate = float(fault_rate)

    def _next_key(self, wanted=None):
        ms = int(time.time() * 1000)
        last = self._last_key
        if wanted is not None and wanted > last:
            key = wanted
        elif ms > last[0]:
            key = (ms, 0)
        else:
            key = (last[0], last[1] + 1)
        self._last_key = key
        return key

    def add_events(self, name, events):
        """Appends items to name's stream; returns their ids.

        An item is normally {"method": ..., "object": ...}; an "id" is added
        when missing (a given id must be newer than every id so far, else a
        new one replaces it). Items that are not objects are stored as they
        are (to test skipping) and still get an internal position."""
        ids = []
        with self._cond:
            b = self._bc[name]
            for ev in events:
                wanted = parse_id(ev.get("id")) if isinstance(ev, dict) else None
                key = self._next_key(wanted)
                if isinstance(ev, dict):
                    ev = _Event(ev)
                    if "id" not in ev or wanted != key:
                        ev["id"] = format_id(key)
                    ev.text = json.dumps(ev)
                b.keys.append(key)
                b.items.append(ev)
                ids.append(format_id(key))
            self._cond.notify_all()
        return ids

    def generate(self, name, count, methods=None):
        """Appends count realistic events cycling through methods (default
        all 12); returns their ids."""
        methods = list(methods or METHODS)
        with self._cond:
            rng = self._rng
            evs = [{"method": methods[i % len(methods)],
                    "object": make_object(rng, methods[i % len(methods)], name)}
                   for i in range(count)]
        return self.add_events(name, evs)

    def add_faults(self, name, faults):
        """Queues faults for the next event requests of name (or of any
        broadcaster when name is None). A fault {"pass": true} lets one
        request through untouched, to interleave faults with good answers.
        Faults that still serve the request normally: "slow", "next_url",
        "pad_next_url" (white space around the nextUrl), "timeout_text"
        (another wording of the 400 "waited too long" answer),
        "null_next_url", "omit_next_url", "close"."""
        with self._cond:
            q = self._bc[name].faults if name is not None else self._global_faults
            q.extend(dict(f) for f in faults)
            return len(q)

    def requests(self, name=None, since=0):
        """Every request received (copies), oldest first."""
        with self._cond:
            out = [dict(r) for r in self._log[since:]]
        if name is not None:
            out = [r for r in out if r.get("broadcaster") == name]
        return out

    def event_requests(self, name=None):
        return [r for r in self.requests(name) if r["kind"] == "events"]

    def tls_errors(self):
        with self._cond:
            return list(self._tls_errors)

    def events(self, name):
        """The stored items of name's stream (copies of the dicts)."""
        with self._cond:
            return [dict(e) if isinstance(e, dict) else e for e in self._bc[name].items]

    def ids(self, name):
        with self._cond:
            return [format_id(k) for k in self._bc[name].keys]

    def reset(self):
        """Forgets events, faults and the request log; keeps broadcasters."""
        with self._cond:
            for b in self._bc.values():
                b.keys, b.items, b.faults, b.requests = [], [], [], 0
            self._global_faults = []
            self._log = []
            self._tls_errors = []
            self._cond.notify_all()

    def stats(self):
        with self._cond:
            return {
                "broadcasters": {n: {"events": len(b.items), "requests": b.requests,
                                     "faults_queued": len(b.faults)}
                                 for n, b in self._bc.items()},
                "requests": len(self._log),
                "tls_errors": len(self._tls_errors),
            }

    def wait_for_requests(self, count, name=None, timeout=10.0, kind="events"):
        """Blocks until at least count requests of kind were logged."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.requests(name) if kind is None or r["kind"] == kind]
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise TimeoutError("%d of %d requests after %.1f s" %
                                   (len(got), count, timeout))
            time.sleep(0.02)

    # -- scenario ------------------------------------------------------------

    def run_scenario(self, name="show", loop=False, speed=1.0):
        """Starts the scripted show for every broadcaster in the background."""
        if name != "show":
            raise ValueError("unknown scenario %r" % name)
        for b in list(self._bc):
            t = threading.Thread(target=self._play_show, args=(b, loop, speed),
                                 name="show-" + b, daemon=True)
            t.start()
            self._scenario_threads.append(t)

    def _play_show(self, b, loop, speed):
        # A stable seed (str hash() changes per process): the same show each run.
        rng = random.Random(zlib.crc32(b.encode()))
        while True:
            start = time.monotonic()
            for at, method, obj in scripted_show(b, rng):
                delay = start + at / speed - time.monotonic()
                with self._cond:
                    if delay > 0:
                        self._cond.wait_for(lambda: self._stopping, delay)
                    if self._stopping:
                        return
                self.add_events(b, [{"method": method, "object": obj}])
            if not loop:
                return

    # -- serving (called by the handler) ------------------------------------

    def _record(self, rec):
        with self._cond:
            rec["seq"] = len(self._log)
            self._log.append(rec)
            if rec.get("broadcaster") in self._bc:
                self._bc[rec["broadcaster"]].requests += 1

    def _take_fault(self, name):
        with self._cond:
            b = self._bc.get(name)
            if b and b.faults:
                return b.faults.pop(0)
            if self._global_faults:
                return self._global_faults.pop(0)
            if self.fault_rate > 0 and self._fault_rng.random() < self.fault_rate:
                return self._random_fault()
            return None

    def _random_fault(self):
        r = self._fault_rng
        kind = r.choice(("429", "5xx", "52x", "reset", "garbage", "slow"))
        if kind == "429":
            return {"status": 429, "retry_after": "1", "random": True}
        if kind == "5xx":
            return {"status": r.choice((500, 502, 503, 504)), "random": True}
        if kind == "52x":
            return {"status": r.choice((520, 521, 522, 523, 524)), "random": True}
        if kind == "reset":
            return {"reset": True, "random": True}
        if kind == "garbage":
            return {"garbage": True, "random": True}
        return {"slow": round(r.uniform(0.2, 1.5), 2), "random": True}

    def _collect(self, name, cursor, hold_s):
        """Waits up to hold_s for items after cursor; returns (items, keys)."""
        deadline = time.monotonic() + hold_s
        with self._cond:
            while True:
                b = self._bc[name]
                start = 0
                if cursor is not None:
                    # Keys are sorted: find the first one after the cursor.
                    lo, hi = 0, len(b.keys)
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if b.keys[mid] <= cursor:
                            lo = mid + 1
                        else:
                            hi = mid
                    start = lo
                if start < len(b.items):
                    end = start + max(1, self.batch_size)
                    return b.items[start:end], b.keys[start:end]
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return [], []
                self._cond.wait(left)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, api, ssl_ctx):
        self.api = api
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or failing client cannot stall the accept loop.
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.api._cond:
                    self.api._tls_errors.append({"time": time.time(), "error": str(e)})
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # Clients hanging up mid-answer are normal here (resets, timeouts).
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeEventsAPI/1.0"

    def setup(self):
        super().setup()
        self._conn_requests = 0

    def log_message(self, fmt, *args):
        if not self.server.api.quiet:
            sys.stderr.write("fake_api: %s\n" % (fmt % args))

    # -- plumbing ----------------------------------------------------------

    def _send(self, status, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        rec = getattr(self, "_rec", None)
        if rec is not None:
            rec["status"] = status  # the request log tells what was answered
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _reset_connection(self):
        # SO_LINGER 0: close() discards unsent data and ends with a RST.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        # socketserver then shuts the socket down: the client sees the
        # connection end without a single byte of answer.
        self.close_connection = True

    def _read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_CONTROL_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(n) if n else b"{}"
        return json.loads(raw or b"{}")

    # -- dispatch ----------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def _dispatch(self):
        api = self.server.api
        raw_path, _, raw_query = self.path.partition("?")
        rec = {
            "time": time.time(),
            "mono": time.monotonic(),
            "method": self.command,
            "path": raw_path,
            "raw_query": raw_query,
            "query": dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True)),
            "headers": dict(self.headers.items()),
            "client": "%s:%d" % self.client_address[:2],
            "kind": "other",
            "status": None,
            # 0 for the first request on a connection, 1.. when kept alive
            # (libcurl silently retries a request once when a reused
            # connection dies without an answer; tests need to tell).
            "conn_seq": self._conn_requests,
        }
        self._conn_requests += 1
        self._rec = rec
        try:
            if raw_path.startswith("/_control/"):
                rec["kind"] = "control"
                self._control(raw_path[len("/_control/"):], rec)
            elif raw_path.startswith("/events/"):
                rec["kind"] = "events"
                self._events(raw_path, rec)
            else:
                api._record(rec)
                self._send(404, {"status": "Not found"})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    # -- /_control/ ----------------------------------------------------------

    def _control(self, what, rec):
        api = self.server.api
        what = what.rstrip("/")
        try:
            body = self._read_json() if self.command == "POST" else {}
        except (ValueError, json.JSONDecodeError) as e:
            self._send(400, {"error": "bad JSON: %s" % e})
            return
        try:
            if what == "events" and self.command == "POST":
                b = body["broadcaster"]
                if "generate" in body:
                    g = body["generate"]
                    ids = api.generate(b, int(g.get("count", 1)), g.get("methods"))
                else:
                    ids = api.add_events(b, body.get("events", []))
                self._send(200, {"ids": ids})
            elif what == "faults" and self.command == "POST":
                n = api.add_faults(body.get("broadcaster"), body.get("faults", []))
                self._send(200, {"queued": n})
            elif what == "requests" and self.command == "GET":
                since = int(rec["query"].get("since", "0"))
                self._send(200, {"requests": api.requests(rec["query"].get("broadcaster"),
                                                          since),
                                 "tls_errors": api.tls_errors()})
            elif what == "reset" and self.command == "POST":
                api.reset()
                self._send(200, {"ok": True})
            elif what == "stats" and self.command == "GET":
                self._send(200, api.stats())
            elif what == "broadcasters" and self.command == "POST":
                api.set_broadcaster(body["name"], body["token"])
                self._send(200, {"ok": True})
            elif what == "config" and self.command == "POST":
                api.configure(body.get("batch_size"), body.get("max_wait"),
                              body.get("fault_rate"))
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": "unknown control endpoint %s %s" %
                                 (self.command, what)})
        except (KeyError, TypeError, ValueError) as e:
            self._send(400, {"error": "bad control request: %r" % (e,)})

    # -- /events/<name>/<token>/ ------------------------------------------

    def _events(self, raw_path, rec):
        api = self.server.api
        # /events/<name>/<token>/ ; the token may arrive percent-encoded, or
        # raw with '/' in it: everything between the name and the final '/'
        # is the token.
        parts = raw_path.split("/")
        name = urllib.parse.unquote(parts[2]) if len(parts) > 2 else ""
        raw_token = "/".join(parts[3:-1]) if len(parts) > 4 else ""
        token = urllib.parse.unquote(raw_token)
        rec["broadcaster"] = name
        rec["token"] = token
        rec["i"] = rec["query"].get("i")
        fault = api._take_fault(name) if name in api._bc else None
        rec["fault"] = fault
        api._record(rec)
        if self.command != "GET":
            self._send(405, {"status": "Method not allowed"})
            return
        if not raw_path.endswith("/") or not raw_token:
            self._send(404, {"status": "Not found"})
            return

        if fault and "slow" in fault:
            time.sleep(float(fault["slow"]))
        if fault and not fault.get("pass"):
            if self._apply_fault(fault, raw_path, rec):
                return

        b = api._bc.get(name)
        if b is None:
            self._send(404, {"status": "Not found"})
            return
        if token != b.token:
            self._send(401, {"status": STATUS_TEXT[401]})
            return

        q = rec["query"]
        try:
            timeout = int(q.get("timeout", "10"))
            if not 0 <= timeout <= MAX_TIMEOUT_S:
                raise ValueError
        except ValueError:
            self._send(400, {"status": "Invalid timeout, must be 0..90"})
            return
        cursor = None
        if q.get("i"):
            cursor = parse_id(q["i"])
            if cursor is None:
                self._send(400, {"status": "Invalid i parameter"})
                return

        hold = float(timeout)
        if api.max_wait is not None:
            hold = min(hold, api.max_wait)
        items, keys = api._collect(name, cursor, hold)

        # Like most real servers, build nextUrl from the Host the client
        # used (so https://localhost:PORT stays localhost).
        host = self.headers.get("Host") or "%s:%d" % (api.host, api.port)
        last = format_id(keys[-1]) if keys else q.get("i")
        next_url = "%s://%s%s?" % (api.scheme, host, raw_path)
        if last:
            next_url += "i=%s&" % last
        next_url += "timeout=%d" % timeout
        if fault and "next_url" in fault:
            next_url = fault["next_url"]
        if fault and "pad_next_url" in fault:
            # Seen in real captures: white space around the nextUrl.
            next_url = fault["pad_next_url"] + next_url + fault["pad_next_url"]
        rec["served"] = [format_id(k) for k in keys]

        if items and not fault:
            texts = [getattr(it, "text", None) or json.dumps(it) for it in items]
            body = '{"events": [%s], "nextUrl": %s}' % (", ".join(texts), json.dumps(next_url))
            status = 200
        elif items:
            body = {"events": items, "nextUrl": next_url}
            status = 200
        else:
            # Peers have seen other wordings: "WAITED TOO LONG", ...
            body = {"status": (fault or {}).get("timeout_text", WAITED_TOO_LONG),
                    "nextUrl": next_url}
            status = 400
        if fault and fault.get("null_next_url"):
            body["nextUrl"] = None
        if fault and fault.get("omit_next_url"):
            del body["nextUrl"]
        rec["status"] = status
        headers = None
        if fault and fault.get("close"):
            # Answer, then close: the client's next request opens a new
            # connection.
            headers = {"Connection": "close"}
            self.close_connection = True
        self._send(status, body, headers=headers)

    def _apply_fault(self, fault, raw_path, rec):
        """Answers according to fault; returns False when the request should
        still be served normally (slow, next_url, null_next_url)."""
        echo = (" (request %s)" % self.path) if fault.get("echo_url") else ""
        if fault.get("reset"):
            rec["status"] = "reset"
            self._reset_connection()
            return True
        if fault.get("truncate"):
            # Promise a body and hang up halfway through it.
            rec["status"] = "truncate"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"events": [')
            self.wfile.flush()
            self._reset_connection()
            return True
        if fault.get("garbage"):
            rec["status"] = 200
            self._send(200, "<html><body>502 upstream hiccup%s</body></html>" % echo,
                       ctype="text/html")
            return True
        if "huge" in fault:
            size = int(fault["huge"])
            head = b'{"events": [], "nextUrl": null, "pad": "'
            tail = b'"}'
            pad = max(0, size - len(head) - len(tail))
            rec["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(head) + pad + len(tail)))
            self.end_headers()
            try:
                self.wfile.write(head)
                chunk = b"x" * 65536
                left = pad
                while left > 0:
                    self.wfile.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))
                self.wfile.write(tail)
            except OSError:
                self.close_connection = True
            return True
        if "redirect" in fault:
            # {"redirect": None}: a 3xx without a Location header.
            rec["status"] = int(fault.get("status", 302))
            self._send(rec["status"], {"status": "moved"},
                       headers=None if fault["redirect"] is None
                       else {"Location": fault["redirect"]})
            return True
        if "body" in fault:
            rec["status"] = int(fault.get("status", 200))
            body = fault["body"]
            if not isinstance(body, str):
                body = json.dumps(body)
            # "encoding": "latin-1" sends chr(0..255) as those bytes, so a
            # test can serve bytes that are not UTF-8.
            self._send(rec["status"], body.encode(fault.get("encoding", "utf-8")),
                       ctype=fault.get("content_type", "application/json"))
            return True
        if "status" in fault:
            status = int(fault["status"])
            rec["status"] = status
            headers = {}
            if fault.get("retry_after") is not None:
                headers["Retry-After"] = _retry_after_value(fault["retry_after"])
            text = STATUS_TEXT.get(status, "Error")
            if status == 400:
                text = fault.get("text", "Some other bad request")
            self._send(status, {"status": text + echo}, headers=headers)
            return True
        return False


def _retry_after_value(value):
    """A Retry-After header: a string is sent as is; {"date_in": s} becomes
    an HTTP date s seconds from now."""
    if isinstance(value, dict) and "date_in" in value:
        return email.utils.formatdate(time.time() + float(value["date_in"]),
                                      usegmt=True)
    return str(value)


def http_date_in(seconds):
    """An IMF-fixdate `seconds` from now (for Retry-After faults)."""
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


# ---------------------------------------------------------------------------
# Command line

def _parse_broadcaster(text):
    name, sep, token = text.partition(":")
    if not sep or not name or not token:
        raise argparse.ArgumentTypeError("expected NAME:TOKEN, got %r" % text)
    return name, token


def main(argv=None):
    p = argparse.ArgumentParser(description="Fake Chaturbate Events API (tests, demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the chosen port here once listening")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    p.add_argument("--broadcaster", action="append", type=_parse_broadcaster,
                   metavar="NAME:TOKEN", help="repeatable; default alice:s3cr3t")
    p.add_argument("--preload", type=int, default=0,
                   help="generate N events per broadcaster at start")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--max-wait", type=float, default=None,
                   help="cap on how long a long-poll is held (seconds)")
    p.add_argument("--scenario", choices=("show",))
    p.add_argument("--loop", action="store_true", help="repeat the scenario forever")
    p.add_argument("--speed", type=float, default=1.0, help="scenario speed factor")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)

    bcs = dict(args.broadcaster) if args.broadcaster else {"alice": "s3cr3t"}
    api = FakeApi(bcs, host=args.host, port=args.port,
                  tls=tuple(args.tls) if args.tls else None,
                  batch_size=args.batch_size, max_wait=args.max_wait,
                  fault_rate=args.fault_rate, seed=args.seed, quiet=not args.verbose)
    api.start()
    for name in bcs:
        if args.preload:
            api.generate(name, args.preload)
    if args.scenario:
        api.run_scenario(args.scenario, loop=args.loop, speed=args.speed)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % api.port)
        os.replace(tmp, args.port_file)  # readers never see a partial file
    sys.stderr.write("fake_api: listening on %s (broadcasters: %s)\n" %
                     (api.base_url, ", ".join(bcs)))
    sys.stderr.flush()

    stop = threading.Event()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
