#!/usr/bin/env python3
"""A fake Home Assistant Supervisor for the add-on tests: the one endpoint
the add-on's entrypoint uses, GET /services/mqtt, answered as the real
Supervisor does (supervisor/api/services.py and api/utils.py):

- 200 {"result": "ok", "data": {host, port, ssl, protocol, username,
  password, addon}} with the right bearer token and a service set;
- 400 {"result": "error", "message": "Service not enabled"} when no add-on
  provides mqtt (no Mosquitto broker add-on);
- 401 for a missing or wrong "Authorization: Bearer <SUPERVISOR_TOKEN>";
- 404 for any other path.

Every request is recorded (path and whether its token was right; the
token itself is never stored). Python 3 standard library only. Import it
(FakeSupervisor) or run it (--port-file, --token, --mqtt JSON) for
scripts/check-image.sh --addon.
"""

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSupervisor:
    def __init__(self, token, mqtt=None, host="127.0.0.1", port=0):
        self.token = token
        self.mqtt = mqtt  # None: "Service not enabled"
        self.requests = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                good = self.headers.get("Authorization") == "Bearer " + owner.token
                with owner._lock:
                    owner.requests.append({"path": self.path, "token_ok": good})
                if self.path != "/services/mqtt":
                    return self._send(404, {"result": "error", "message": "Not found"})
                if not good:
                    return self._send(401, {"result": "error",
                                            "message": "Invalid token for access"})
                if owner.mqtt is None:
                    return self._send(400, {"result": "error", "message": "Service not enabled"})
                return self._send(200, {"result": "ok", "data": owner.mqtt})

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join(5)

    def mqtt_requests(self):
        with self._lock:
            return [r for r in self.requests if r["path"] == "/services/mqtt"]


def mqtt_service(host, port, username=None, password=None, ssl=False):
    """The service data the Mosquitto broker add-on registers."""
    data = {"host": host, "port": port, "ssl": ssl, "protocol": "3.1.1",
            "addon": "core_mosquitto"}
    if username is not None:
        data["username"] = username
    if password is not None:
        data["password"] = password
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--mqtt", help="the service data as JSON; absent: not enabled")
    a = ap.parse_args()
    sup = FakeSupervisor(a.token, json.loads(a.mqtt) if a.mqtt else None)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % sup.port)
    os.replace(a.port_file + ".tmp", a.port_file)
    try:
        sup.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
