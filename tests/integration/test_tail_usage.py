"""cbevents-tail's command line (SPEC section 4): bad usage exits 2 before
any request, the token cannot be given as an argument, --help exits 0."""

import os

import cbtest

TOKEN = "usageTok-112233"


def _expect_usage(args, env_token=TOKEN, api=None, **kw):
    p = cbtest.run_process([cbtest.tail_program()] + args, timeout=10,
                           env=cbtest.tail_env(token=env_token, **kw), name="cbevents-tail")
    assert p.returncode == 2, "%r: exit %s, want 2\n%s" % (args, p.returncode, p.describe())
    assert p.stderr_text().strip(), "%r: exit 2 without a word on stderr" % args
    assert p.stdout_text() == "", "%r printed on stdout" % args
    if api is not None:
        assert api.event_requests() == [], "%r: made a request" % args
    return p


def test_usage_errors_exit_2():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    base = ["--api", api.base_url]
    cases = [
        base,                                          # no username
        base + ["--token", TOKEN, "alice"],            # no such flag, by design
        base + ["--token=" + TOKEN, "alice"],
        base + ["--bogus", "alice"],
        base + ["--timeout", "91", "alice"],
        base + ["--timeout", "-1", "alice"],
        base + ["--timeout", "ten", "alice"],
        base + ["--timeout", "5x", "alice"],
        base + ["--retries", "-1", "alice"],
        base + ["--retries", "many", "alice"],
        base + ["--rate", "fast", "alice"],
        base + ["--log-level", "loud", "alice"],
        base + ["alice", "bob"],
        ["--testbed"] + base + ["alice"],
        ["--api", "http://example.com/events", "alice"],   # http only for loopback
        ["--api", "ftp://127.0.0.1/events", "alice"],
        ["--api"],
    ]
    env_token = "envTok-445566"
    for args in cases:
        p = _expect_usage(args, env_token=env_token, api=api)
        # (getopt may echo an unknown "--token=..." back: the user typed it.)
        cbtest.assert_no_secret(p.stderr_text(), env_token, "stderr of %r" % args)


def test_no_token_exit_2():
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.3)
    _expect_usage(["--api", api.base_url, "alice"], env_token=None, api=api)
    missing = os.path.join(cbtest.tempdir(), "no-such-token-file")
    _expect_usage(["--api", api.base_url, "alice"], env_token=None, token_file=missing, api=api)


def test_help_exits_0():
    p = cbtest.run_process([cbtest.tail_program(), "--help"], timeout=10,
                           env=cbtest.tail_env(), name="cbevents-tail")
    assert p.returncode == 0, p.describe()
    out = p.stdout_text()
    assert "usage:" in out and "--api" in out and "CB_TOKEN" in out, out
    assert "--token" not in out


if __name__ == "__main__":
    cbtest.run([test_usage_errors_exit_2, test_no_token_exit_2, test_help_exits_0])
