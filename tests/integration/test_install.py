"""Install test: `cmake --install` into a temporary prefix, then use the
result the way a packager and a C developer would.

It checks the installed layout (programs, static and shared library with
its SONAME, headers with the generated version.h, pkg-config file, CMake
package, man pages, systemd unit, example config), builds the consumer of
tests/consumer against the installed library four ways (pkg-config shared
and static, find_package(cbevents) shared and static), runs each on a
recorded API response and checks what the library made of it. Last,
`systemd-analyze verify` must accept the installed unit without a warning
(skipped only when the tool is absent).
"""
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["CBEV_SOURCE_DIR"]
BUILD = os.environ["CBEV_BUILD_DIR"]
CONSUMER = os.path.join(SRC, "tests", "consumer")
RESPONSE = os.path.join(CONSUMER, "response.json")
NEXT_URL = ("https://eventsapi.chaturbate.com/events/alice/"
            "REDACTED0000000000000000/?i=1755376921000-0&timeout=10")


def run(cmd, env=None, cwd=None):
    """Runs cmd; on failure prints everything and fails the test."""
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        print("$ " + " ".join(cmd), file=sys.stderr)
        print(p.stdout, p.stderr, file=sys.stderr)
        raise AssertionError(f"{cmd[0]} exited {p.returncode}")
    return p


def cache_vars():
    out = {}
    with open(os.path.join(BUILD, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
            if m:
                out[m.group(1)] = m.group(2)
    return out


def iso_ms(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def check_output(label, p, version):
    """What a correct libcbevents prints for tests/consumer/response.json."""
    lines = p.stdout.splitlines()
    events = [json.loads(l[len("event "):]) for l in lines if l.startswith("event ")]
    rest = [l for l in lines if not l.startswith("event ")]
    assert rest == [f"next_url {NEXT_URL}", "tip_tokens 125",
                    f"version {version} {version}"], (label, rest)
    # "not an event" is skipped with a warning, the rest kept in order.
    assert "warn" in p.stderr, (label, p.stderr)
    ids = ["1755376889458-0", "1755376903836-0", "1755376910001-3",
           "1755376912000-0", "1755376915250-0", "1755376920000-0",
           "1755376921000-0"]
    types = ["broadcast_start", "tip", "tip", "chat_message", "media_purchase",
             "room_subject_change", "spotlight_start"]
    assert [e["id"] for e in events] == ids, (label, events)
    assert [e["event_type"] for e in events] == types, (label, events)
    for e in events:
        assert e["broadcaster"] == "alice", (label, e)
        assert e["timestamp"] == iso_ms(int(e["id"].split("-")[0])), (label, e)
    assert events[1]["timestamp"] == "2025-08-16T20:41:43.836Z", label
    bob = events[1]["user"]
    assert bob["username"] == "bob" and bob["color_group"] == "tr", (label, bob)
    assert bob["is_follower"] is True and bob["is_mod"] is False, (label, bob)
    assert bob["subgender"] is None, (label, bob)
    assert events[1]["tip"] == {"tokens": 25, "is_anon": False, "message": "hi"}, label
    # The anonymous tipper stays anonymous.
    assert events[2]["user"] is None, (label, events[2])
    assert events[2]["tip"] == {"tokens": 100, "is_anon": True, "message": ""}, label
    msg = events[3]["message"]
    assert msg["text"] == "hello there" and msg["color"] == "#494949", (label, msg)
    assert msg["bg_color"] is None, (label, msg)
    assert events[3]["user"]["is_mod"] is True, label
    assert events[4]["media"] == {"id": "42", "name": "beach set",
                                  "type": "photos", "tokens": 50}, (label, events[4])
    assert events[5]["subject"] == "Goal: 500 tokens", (label, events[5])
    assert events[6]["raw"] == {"broadcaster": "alice", "slot": 3}, (label, events[6])


def needed(path):
    out = run(["readelf", "-d", path]).stdout
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def main():
    cache = cache_vars()
    version = cache["CMAKE_PROJECT_VERSION"]
    major = version.split(".")[0]
    cc = cache.get("CMAKE_C_COMPILER", "cc")
    # A sanitized build installs sanitized code: its consumers must link the
    # sanitizer runtime too.
    san = ["-fsanitize=address,undefined"] if cache.get("CBEV_SANITIZE") == "ON" else []
    tmp = tempfile.mkdtemp(prefix="cbev-install-")
    try:
        prefix = os.path.join(tmp, "prefix")
        run(["cmake", "--install", BUILD, "--prefix", prefix])

        # Layout.
        for prog in ("cb2mqtt", "cbevents-tail"):
            path = os.path.join(prefix, "bin", prog)
            assert os.access(path, os.X_OK), f"{path} missing"
        so = glob.glob(os.path.join(prefix, "lib*", "**", "libcbevents.so"), recursive=True)
        assert len(so) == 1, so
        libdir = os.path.dirname(so[0])
        real = os.path.join(libdir, f"libcbevents.so.{version}")
        assert os.path.realpath(so[0]) == real, os.path.realpath(so[0])
        assert os.readlink(os.path.join(libdir, f"libcbevents.so.{major}")) == \
            f"libcbevents.so.{version}"
        assert os.path.isfile(os.path.join(libdir, "libcbevents.a"))
        dyn = run(["readelf", "-d", real]).stdout
        assert f"Library soname: [libcbevents.so.{major}]" in dyn, dyn
        # Only the public API is exported from the shared library.
        syms = run(["nm", "-D", "--defined-only", real]).stdout.split("\n")
        names = [l.split()[-1].split("@")[0] for l in syms if l.strip()]
        names = [n for n in names if n != "CBEVENTS_0"]
        assert "cbev_parse_response" in names and "cbev_event_to_json" in names, names
        assert all(n.startswith("cbev_") for n in names), \
            [n for n in names if not n.startswith("cbev_")]
        inc = os.path.join(prefix, "include", "cbevents")
        for h in glob.glob(os.path.join(SRC, "include", "cbevents", "*.h")):
            assert os.path.isfile(os.path.join(inc, os.path.basename(h))), h
        with open(os.path.join(inc, "version.h"), encoding="utf-8") as f:
            assert f'#define CBEV_VERSION "{version}"' in f.read()
        assert os.path.isfile(os.path.join(libdir, "pkgconfig", "cbevents.pc"))
        cmakedir = os.path.join(libdir, "cmake", "cbevents")
        for f in ("cbeventsConfig.cmake", "cbeventsConfigVersion.cmake",
                  "cbeventsTargets.cmake"):
            assert os.path.isfile(os.path.join(cmakedir, f)), f
        for page in ("cb2mqtt.1", "cbevents-tail.1"):
            assert os.path.isfile(os.path.join(prefix, "share", "man", "man1", page)), page
        unit = os.path.join(prefix, "lib", "systemd", "system", "cb2mqtt.service")
        with open(unit, encoding="utf-8") as f:
            assert f"ExecStart={prefix}/bin/cb2mqtt\n" in f.read(), "ExecStart not relocated"
        if os.path.isfile(os.path.join(SRC, "config", "cb2mqtt.ini")):
            assert os.path.isfile(os.path.join(prefix, "share", "doc", "cb2mqtt",
                                               "examples", "cb2mqtt.ini"))

        # 1, 2: pkg-config, shared and static.
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        cflags = run(["pkg-config", "--cflags", "cbevents"], env=env).stdout.split()
        # ${pcfiledir}-relative: the include dir is the one in this prefix.
        assert os.path.join(prefix, "include") in \
            [os.path.normpath(c[2:]) for c in cflags if c.startswith("-I")], cflags
        libs = run(["pkg-config", "--libs", "cbevents"], env=env).stdout.split()
        warn = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Wstrict-prototypes", "-Werror"]
        src = os.path.join(CONSUMER, "consumer.c")
        exe = os.path.join(tmp, "consumer-pc")
        run([cc, *warn, *san, src, "-o", exe, *cflags, *libs])
        assert "libcbevents.so." + major in needed(exe), needed(exe)
        p = run([exe, RESPONSE], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
        check_output("pkg-config shared", p, version)

        # Static libcbevents with the shared curl and cJSON it requires
        # (pkg-config --static would also ask for curl's own static deps,
        # which Debian's libcurl4-openssl-dev does not ship).
        reqs = run(["pkg-config", "--print-requires-private", "cbevents"], env=env).stdout.split()
        assert reqs == ["libcurl", "libcjson"], reqs
        slibs = [os.path.join(libdir, "libcbevents.a"),
                 *run(["pkg-config", "--libs", *reqs], env=env).stdout.split(), "-pthread", "-lm"]
        exe = os.path.join(tmp, "consumer-pc-static")
        run([cc, *warn, *san, src, "-o", exe, *cflags, *slibs])
        assert not any(n.startswith("libcbevents") for n in needed(exe)), needed(exe)
        check_output("pkg-config static", run([exe, RESPONSE]), version)

        # 3, 4: find_package(cbevents), shared and static. No
        # LD_LIBRARY_PATH: CMake's build RPATH must point at the prefix.
        for static in ("OFF", "ON"):
            bdir = os.path.join(tmp, f"cmake-static-{static}")
            run(["cmake", "-S", CONSUMER, "-B", bdir, f"-DCMAKE_PREFIX_PATH={prefix}",
                 f"-DCMAKE_C_COMPILER={cc}", f"-DCBEV_CONSUMER_STATIC={static}",
                 "-DCMAKE_C_FLAGS=" + " ".join(san),
                 "-DCMAKE_EXE_LINKER_FLAGS=" + " ".join(san)])
            run(["cmake", "--build", bdir])
            exe = os.path.join(bdir, "consumer")
            has_so = any(n.startswith("libcbevents") for n in needed(exe))
            assert has_so == (static == "OFF"), (static, needed(exe))
            check_output(f"find_package static={static}", run([exe, RESPONSE]), version)

        # The installed unit, checked against the installed program and
        # man page (Documentation=man:cb2mqtt(1)).
        tool = shutil.which("systemd-analyze")
        if tool is None:
            print("systemd-analyze is absent: unit not verified")
        else:
            venv = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"))
            p = subprocess.run([tool, "verify", unit], env=venv, capture_output=True, text=True)
            # verify exits 0 on unknown keys or bad values but says so.
            assert p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(), \
                (p.returncode, p.stdout, p.stderr)
            print("systemd-analyze verify: clean")
        print("install test: layout, 4 consumer builds and the unit are good")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
