"""cbevents-tail: authentication failures (401, 403) end the tool with exit
status 3 after the request and its auth_retries (2) retries, whether at the
start or when the token is revoked while it runs; nothing extra is printed.
(A lone 401/403 followed by a good answer: test_tail_realworld.py.)"""

import cbtest

TOKEN = "authTok-a1b2c3d4e5f6"


def _expect_auth_exit(tail, api, requests):
    rc = tail.wait(10)
    assert rc == 3, "exit %s, want 3\n%s" % (rc, tail.describe())
    n = len(api.event_requests())
    assert n == requests, "%d requests, want %d (1 + 2 auth retries)" % (n, requests)


def test_wrong_token_401():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    api.generate("alice", 3)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"],
                             token="not-the-token")
    _expect_auth_exit(tail, api, 3)
    assert tail.stdout_text() == ""


def test_403_fault():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    api.generate("alice", 3)
    api.add_faults("alice", [{"status": 403}] * 3)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"], token=TOKEN)
    _expect_auth_exit(tail, api, 3)
    assert tail.stdout_text() == ""


def test_token_revoked_while_running():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    ids = api.generate("alice", 3)
    tail = cbtest.start_tail(["--api", api.base_url, "--timeout", "1", "alice"], token=TOKEN)
    tail.wait_stdout_lines(3, timeout=10)
    api.set_broadcaster("alice", "a-new-token")
    rc = tail.wait(10)
    assert rc == 3, "exit %s, want 3\n%s" % (rc, tail.describe())
    assert [ln["id"] for ln in cbtest.json_lines(tail.stdout_text())] == ids
    reqs = api.event_requests()
    refused = [r for r in reqs if r["status"] == 401]
    assert len(refused) == 3, "%d requests after the revocation, want 3" % len(refused)
    assert reqs[-1]["status"] == 401 and reqs[-1]["i"] == ids[-1], "the cursor was not kept"


if __name__ == "__main__":
    cbtest.run([test_wrong_token_401, test_403_fault, test_token_revoked_while_running])
