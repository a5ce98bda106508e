"""cbevents-tail over HTTPS against the fake API with a throwaway CA:
trusted through --ca-file it works; without it the certificate is refused,
the tool exits 1 (after at most its --retries attempts) and no HTTP request,
hence no token, ever reaches the server."""

import signal

import cbtest

TOKEN = "tlsTok-0123abcd"


def _tls_api():
    pki = cbtest.Pki()
    api = cbtest.fake_api({"alice": TOKEN}, tls=(pki.server_cert, pki.server_key),
                          max_wait=0.5)
    return pki, api


def test_https_with_ca_file():
    pki, api = _tls_api()
    ids = api.generate("alice", 5)
    assert api.base_url.startswith("https://127.0.0.1:")
    tail = cbtest.start_tail(["--api", api.base_url, "--ca-file", pki.ca_cert, "--timeout", "1",
                              "alice"], token=TOKEN)
    tail.wait_stdout_lines(5, timeout=15)
    assert tail.stop(signal.SIGTERM) == 0, tail.describe()
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    assert api.tls_errors() == []


def test_https_localhost_name_with_ca_file():
    pki, api = _tls_api()
    ids = api.generate("alice", 2)
    base = "https://localhost:%d/events" % api.port
    tail = cbtest.start_tail(["--api", base, "--ca-file", pki.ca_cert, "--timeout", "1",
                              "alice"], token=TOKEN)
    tail.wait_stdout_lines(2, timeout=15)
    assert tail.stop(signal.SIGTERM) == 0, tail.describe()
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids


def test_https_untrusted_certificate_fails():
    pki, api = _tls_api()
    api.generate("alice", 5)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "--retries", "2",
                              "alice"], token=TOKEN)
    rc = tail.wait(15)
    assert rc == 1, "exit %s, want 1 for an untrusted certificate\n%s" % (rc, tail.describe())
    assert tail.stdout_text() == ""
    assert api.event_requests() == [], "an HTTP request got through an untrusted TLS session"
    n = len(api.tls_errors())
    assert 1 <= n <= 2, "%d TLS handshakes for --retries 2" % n
    cbtest.assert_no_secret(tail.stderr_text(), TOKEN, "stderr")


def test_https_wrong_ca_fails():
    pki, api = _tls_api()
    other = cbtest.Pki()  # a CA that did not sign the server certificate
    api.generate("alice", 1)
    tail = cbtest.start_tail(["--api", api.base_url, "--ca-file", other.ca_cert, "--timeout",
                              "1", "--retries", "1", "alice"], token=TOKEN)
    rc = tail.wait(15)
    assert rc == 1, "exit %s, want 1\n%s" % (rc, tail.describe())
    assert api.event_requests() == []


if __name__ == "__main__":
    cbtest.run([test_https_with_ca_file, test_https_localhost_name_with_ca_file,
                test_https_untrusted_certificate_fails, test_https_wrong_ca_fails])
