"""The Debian package test: builds cb2mqtt, libcbevents0 and
libcbevents-dev with scripts/build-deb.sh (dpkg-buildpackage in a clean
copy, lintian without errors) and uses them on a Debian 12 system the way
an administrator and a C developer would.

The system is the debootstrapped bookworm tree of it.test_image
(scripts/check-image.sh --rootfs-only builds or reuses its cache) with a
C toolchain added once (cached beside it, in CBEV_BUILD_DIR/deb-cache).
A fresh copy of that tree per run, under chroot in a private mount
namespace:

1. `apt-get install ./*.deb`: apt resolves the packages' Depends from the
   archive (what dh_shlibdeps computed, and the -dev package's curl, cJSON
   and pkgconf); the system user, the conffile, the unit (enabled, not
   started: the tree runs no systemd) and the drop-in are there.
2. The installed `cb2mqtt --version`; `--check-config` on the shipped
   /etc/cb2mqtt/cb2mqtt.ini with a token as a systemd credential (exit 0)
   and without one (exit 2).
3. The installed bridge run as the unit would run it (its User=,
   Environment=, LoadCredential= and StateDirectory= read from the installed
   unit and drop-in) against mosquitto and the fake Events API on the host:
   an event arrives, SIGTERM exits 0, the state is owned by the system user,
   the token is in no log. The installed cbevents-tail prints an event too.
4. The consumer of tests/consumer built against the installed -dev package
   with pkg-config and with find_package(cbevents) (shared and static), each
   run on the recorded response and checked as it.test_install checks it.
5. `systemd-analyze verify` (the tree's own, Debian 12's) on the installed
   unit and drop-in.
6. remove (conffile and state stay), then purge + autoremove: what is left
   compared with the tree before the install is exactly the administrator's
   token file and the system user's account lines.

Needs root (debootstrap trees, mounts, chroot). Skips (77) only when
Debian's packages cannot be reached.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import cbtest
from test_install import check_output

SRC = os.environ["CBEV_SOURCE_DIR"]
BUILD = os.environ["CBEV_BUILD_DIR"]
TOKEN = "debcheck-token-5b21e7"
USER = "_cb2mqtt"
PACKAGES = ("cb2mqtt", "libcbevents0", "libcbevents-dev")
# What a C developer has: the toolchain, not the -dev package's own
# dependencies (apt must bring those, or the consumer build fails). And
# systemd, which every Debian system that runs the unit has: its
# systemd-analyze verifies the installed unit (nothing starts it here).
TOOLS = ("gcc", "libc6-dev", "make", "cmake", "systemd", "man-db")
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "LANG": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
# Paths of the tree that change with any apt run (or man-db's cache, which
# `man` fills) and say nothing about what our packages leave behind.
VOLATILE = ("proc", "dev", "tmp", "run", "var/cache/apt", "var/lib/apt",
            "var/lib/dpkg", "var/log", "var/cache/debconf", "var/cache/ldconfig",
            "var/cache/man", "etc/ld.so.cache")


def step(msg, t0=[time.monotonic()]):
    print("  [%6.1f s] %s" % (time.monotonic() - t0[0], msg), flush=True)


def run(argv, timeout=600, check=True, **kw):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(map(str, argv)), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p


class Tree:
    """A Debian tree used under chroot, with /proc and the two devices
    programs need mounted while it is in use."""

    def __init__(self, path):
        self.path = path
        self.mounts = []

    def mount(self, extra_binds=()):
        run(["mount", "-t", "proc", "proc", os.path.join(self.path, "proc")])
        self.mounts.append(os.path.join(self.path, "proc"))
        for dev in ("null", "urandom", "zero"):
            target = os.path.join(self.path, "dev", dev)
            if os.path.lexists(target):
                os.unlink(target)
            open(target, "w").close()
            run(["mount", "--bind", "/dev/" + dev, target])
            self.mounts.append(target)
        for source, rel in extra_binds:
            target = os.path.join(self.path, rel)
            os.makedirs(target, exist_ok=True)
            run(["mount", "--bind", source, target])
            self.mounts.append(target)
        # Name resolution for apt, as debootstrap set it up.
        shutil.copyfile("/etc/resolv.conf", os.path.join(self.path, "etc", "resolv.conf"))
        cbtest.on_cleanup(self.umount)
        return self

    def umount(self):
        while self.mounts:
            m = self.mounts.pop()
            if subprocess.call(["umount", m], stderr=subprocess.DEVNULL) != 0:
                subprocess.call(["umount", "-l", m], stderr=subprocess.DEVNULL)

    def argv(self, *argv, user=None):
        spec = ["--userspec=%s:%s" % (user, user)] if user else []
        return ["chroot"] + spec + [self.path] + [str(a) for a in argv]

    def run(self, *argv, user=None, env=None, check=True, timeout=600):
        e = dict(CHROOT_ENV)
        e.update(env or {})
        return run(self.argv(*argv, user=user), env=e, check=check, timeout=timeout)

    def sh(self, script, **kw):
        return self.run("/bin/sh", "-ec", script, **kw)

    def file(self, rel):
        return os.path.join(self.path, rel.lstrip("/"))

    def read(self, rel):
        with open(self.file(rel), encoding="utf-8") as f:
            return f.read()

    def snapshot(self):
        """Every path of the tree except the volatile ones."""
        out = set()
        for top, dirs, files in os.walk(self.path):
            rel_top = os.path.relpath(top, self.path)
            rel_top = "" if rel_top == "." else rel_top
            keep = []
            for d in dirs:
                rel = os.path.join(rel_top, d)
                if rel in VOLATILE:
                    continue
                keep.append(d)
                if os.path.islink(os.path.join(top, d)):
                    out.add(rel)
            dirs[:] = keep
            if rel_top:
                out.add(rel_top)
            for f in files:
                rel = os.path.join(rel_top, f)
                if rel not in VOLATILE:
                    out.add(rel)
        return out


def base_tree():
    """The cached tree of it.test_image (built when missing)."""
    p = run(["bash", os.path.join(SRC, "scripts", "check-image.sh"),
             "--build-dir", BUILD, "--rootfs-only"], check=False, timeout=1800)
    if p.returncode == 77:
        cbtest.skip("Debian's packages cannot be reached: " + p.stderr.strip()[-300:])
    if p.returncode != 0:
        raise AssertionError("check-image.sh --rootfs-only failed:\n" + p.stderr[-3000:])
    path = p.stdout.strip().splitlines()[-1]
    assert os.path.isdir(path), path
    return path


def tools_tree(base, archives):
    """The base tree plus TOOLS, cached under deb-cache, keyed by both."""
    cache = os.path.join(BUILD, "deb-cache")
    key = hashlib.sha256(("v1 %s %s" % (os.path.basename(base), " ".join(TOOLS)))
                         .encode()).hexdigest()[:16]
    path = os.path.join(cache, "rootfs-" + key)
    if os.path.isfile(os.path.join(path, ".cbev-complete")):
        return path
    for old in os.listdir(cache) if os.path.isdir(cache) else ():
        if old.startswith("rootfs-") or old == "tmp-rootfs":
            run(["rm", "-rf", "--one-file-system", os.path.join(cache, old)])
    tmp = os.path.join(cache, "tmp-rootfs")
    step("caching the tree with %s (once)" % " ".join(TOOLS))
    run(["cp", "-a", base, tmp])
    tree = Tree(tmp).mount([(archives, "var/cache/apt/archives")])
    try:
        tree.run("apt-get", "update", "-qq")
        tree.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *TOOLS)
    finally:
        tree.umount()
    open(os.path.join(tmp, ".cbev-complete"), "w").close()
    os.rename(tmp, path)
    return path


def unit_settings(tree):
    """Key -> [values] of the installed unit with its drop-ins applied in
    order (what `systemctl cat` shows; an empty value resets a list)."""
    files = [tree.file("lib/systemd/system/cb2mqtt.service")]
    dropins = tree.file("lib/systemd/system/cb2mqtt.service.d")
    if os.path.isdir(dropins):
        files += [os.path.join(dropins, f) for f in sorted(os.listdir(dropins))
                  if f.endswith(".conf")]
    settings = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line[0] in "#;[" or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                if v == "":
                    settings[k] = []
                else:
                    settings.setdefault(k, []).append(v)
    return settings


def last(settings, key):
    assert settings.get(key), "the installed unit has no %s=" % key
    return settings[key][-1]


def check_installed(tree, version):
    for pkg in PACKAGES:
        st = tree.run("dpkg-query", "-W", "-f=${Status} ${Version}", pkg).stdout
        assert st == "install ok installed %s" % version, (pkg, st)
    for path in ("usr/bin/cb2mqtt", "usr/bin/cbevents-tail"):
        assert os.access(tree.file(path), os.X_OK), path
    for path in ("usr/share/man/man1/cb2mqtt.1.gz", "usr/share/man/man1/cbevents-tail.1.gz",
                 "usr/share/doc/cb2mqtt/copyright",
                 "usr/share/doc/cb2mqtt/examples/cb2mqtt.ini",
                 "usr/share/doc/cb2mqtt/examples/node-red/flows.json",
                 "lib/systemd/system/cb2mqtt.service",
                 "lib/systemd/system/cb2mqtt.service.d/debian.conf",
                 "usr/include/cbevents/cbevents.h", "usr/include/cbevents/version.h"):
        assert os.path.isfile(tree.file(path)), path
    rules = os.path.join(SRC, "config", "prometheus")
    if os.path.isdir(rules):
        for f in os.listdir(rules):
            assert os.path.isfile(tree.file("usr/share/doc/cb2mqtt/examples/prometheus/" + f)), f
    # The flows are imported as they are: not compressed.
    with open(tree.file("usr/share/doc/cb2mqtt/examples/node-red/flows.json")) as f:
        json.load(f)
    # The conffile is the example INI, registered as a conffile.
    with open(os.path.join(SRC, "config", "cb2mqtt.ini"), encoding="utf-8") as f:
        assert tree.read("etc/cb2mqtt/cb2mqtt.ini") == f.read()
    conffiles = tree.run("dpkg-query", "-W", "-f=${Conffiles}", "cb2mqtt").stdout
    assert "/etc/cb2mqtt/cb2mqtt.ini " in conffiles, conffiles
    # The system user of the postinst: a system uid, no login, home = state.
    pw = tree.run("getent", "passwd", USER).stdout.strip().split(":")
    assert 100 <= int(pw[2]) < 1000 and pw[5] == "/var/lib/cb2mqtt" and \
        pw[6] == "/usr/sbin/nologin", pw
    tree.run("getent", "group", USER)
    # Enabled at installation (dh_installsystemd), not started: no systemd
    # runs here, and none would start it without the token.
    wants = tree.file("etc/systemd/system/multi-user.target.wants/cb2mqtt.service")
    assert os.readlink(wants) == "/lib/systemd/system/cb2mqtt.service", os.readlink(wants)
    # The unit and its drop-in, as the bridge will run.
    s = unit_settings(tree)
    assert last(s, "ExecStart") == "/usr/bin/cb2mqtt", s["ExecStart"]
    assert last(s, "User") == USER and last(s, "Group") == USER, s
    assert last(s, "DynamicUser") == "no", s["DynamicUser"]
    assert s.get("ConditionFileNotEmpty") == ["/etc/cb2mqtt/cb_token"], s
    # The library: SONAME, symbols file, shlibs.
    lib = tree.run("sh", "-c", "ls /usr/lib/*/libcbevents.so.0").stdout.strip()
    assert lib, "no libcbevents.so.0"
    sym = tree.run("dpkg-query", "--control-show", "libcbevents0", "symbols").stdout
    assert sym.startswith("libcbevents.so.0 libcbevents0 #MINVER#"), sym[:200]
    assert " cbev_parse_response@CBEVENTS_0 " in sym, sym[:500]


def credentials(tree, settings, user):
    """/run/credentials/cb2mqtt.service as systemd fills it from
    LoadCredential= (absolute sources that exist), readable by the user."""
    cred_dir = "/run/credentials/cb2mqtt.service"
    host_dir = tree.file(cred_dir)
    os.makedirs(host_dir, mode=0o500, exist_ok=True)
    uid = int(tree.run("id", "-u", user).stdout)
    gid = int(tree.run("id", "-g", user).stdout)
    for spec in settings.get("LoadCredential", []):
        name, _, source = spec.partition(":")
        if source.startswith("/") and os.path.isfile(tree.file(source)):
            dst = os.path.join(host_dir, name)
            shutil.copyfile(tree.file(source), dst)
            os.chown(dst, uid, gid)
            os.chmod(dst, 0o400)
    os.chown(host_dir, uid, gid)
    return cred_dir, uid, gid


def check_config_and_bridge(tree, version):
    out = tree.run("/usr/bin/cb2mqtt", "--version", user=USER).stdout
    assert version in out, out
    s = unit_settings(tree)
    # Without a token the shipped conffile is refused (exit 2), and the
    # unit's condition would keep systemd from starting it at all.
    cond = last(s, "ConditionFileNotEmpty")
    assert not os.path.exists(tree.file(cond)), cond
    p = tree.run("/usr/bin/cb2mqtt", "-c", "/etc/cb2mqtt/cb2mqtt.ini", "--check-config",
                 user=USER, check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    # The administrator's step: the token, as README says.
    tree.sh("umask 077; printf '%%s\\n' '%s' > %s" % (TOKEN, cond))
    assert os.path.getsize(tree.file(cond)) > 0
    cred_dir, uid, gid = credentials(tree, s, last(s, "User"))
    env = {"CREDENTIALS_DIRECTORY": cred_dir}
    p = tree.run("/usr/bin/cb2mqtt", "-c", "/etc/cb2mqtt/cb2mqtt.ini", "--check-config",
                 user=USER, env=env, check=False)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    cbtest.assert_no_secret(p.stdout + p.stderr, TOKEN, "--check-config")

    # The bridge as the unit runs it: StateDirectory=, Environment=, the
    # credentials; the broker and the API from a test's drop-in would.
    state = tree.file("var/lib/cb2mqtt")
    assert last(s, "StateDirectory") == "cb2mqtt"
    os.makedirs(state, exist_ok=True)
    os.chown(state, uid, gid)
    os.chmod(state, int(last(s, "StateDirectoryMode"), 8))
    unit_env = dict(CHROOT_ENV)
    unit_env.pop("HOME")
    for spec in s.get("Environment", []):
        k, _, v = spec.partition("=")
        unit_env[k] = v.replace("%S", "/var/lib")
    assert unit_env.get("CB2MQTT_EVENTS_STATE_DIR") == "/var/lib/cb2mqtt", unit_env
    broker = cbtest.Mosquitto().start()
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=1)
    sub = cbtest.Subscriber(broker, topics=("cb/#",)).start()
    unit_env.update(env)
    unit_env.update({"CB2MQTT_MQTT_URL": broker.url, "CB2MQTT_EVENTS_API": api.base_url,
                     "CB2MQTT_EVENTS_TIMEOUT": "1", "CB2MQTT_LOG_LEVEL": "debug"})
    bridge = cbtest.Process(tree.argv(last(s, "ExecStart"), "-c", "/etc/cb2mqtt/cb2mqtt.ini",
                                      user=last(s, "User")),
                            env=unit_env, name="cb2mqtt-deb")
    ids = api.generate("alice", 3)
    types = set(cbtest.EVENT_TYPES.values())

    def is_event(m):
        parts = m.topic.split("/")
        return len(parts) == 3 and parts[1] == "alice" and parts[2] in types and \
            m.json().get("id") in ids
    try:
        m = sub.wait_for(is_event, timeout=30, what="an event of alice on cb/alice/<type>")
    except AssertionError:
        raise AssertionError("no event from the installed bridge\n" + bridge.describe())
    assert m.json()["broadcaster"] == "alice", m.json()
    step("the installed bridge published %s" % m.topic)
    rc = bridge.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, "exit %s after SIGTERM\n%s" % (rc, bridge.describe())
    files = os.listdir(state)
    assert files, "nothing in /var/lib/cb2mqtt"
    for f in files:
        st = os.stat(os.path.join(state, f))
        assert st.st_uid == uid, (f, st.st_uid)
    cbtest.assert_no_secret(bridge.stderr_text() + bridge.stdout_text(), TOKEN, "the bridge log")
    cbtest.assert_no_secret_in_messages(sub.messages(), TOKEN)

    # The installed cbevents-tail prints events of the same feed.
    tail = cbtest.Process(tree.argv("/usr/bin/cbevents-tail", "--api", api.base_url,
                                    "--timeout", "1", "alice", user=USER),
                          env=dict(CHROOT_ENV, CB_TOKEN=TOKEN), name="cbevents-tail-deb")
    try:
        line = tail.wait_stdout_lines(1, timeout=20)[0]
    except AssertionError:
        raise AssertionError("no event from the installed cbevents-tail\n" + tail.describe())
    assert json.loads(line)["id"] == ids[0], line
    tail.stop()
    broker.stop()


def check_consumer(tree, version):
    """tests/consumer against the installed -dev package, three ways."""
    dst = tree.file("tmp/consumer")
    shutil.copytree(os.path.join(SRC, "tests", "consumer"), dst)
    resp = "/tmp/consumer/response.json"
    warn = "-std=c11 -Wall -Wextra -Wpedantic -Wstrict-prototypes -Werror"

    def needed(exe):
        out = tree.run("readelf", "-d", exe).stdout
        return [l.split("[")[1].rstrip("]") for l in out.splitlines() if "(NEEDED)" in l]

    tree.sh("cc %s /tmp/consumer/consumer.c -o /tmp/consumer-pc $(pkg-config --cflags --libs cbevents)"
            % warn)
    assert "libcbevents.so.0" in needed("/tmp/consumer-pc"), needed("/tmp/consumer-pc")
    check_output("deb pkg-config", tree.run("/tmp/consumer-pc", resp), version)
    for static in ("OFF", "ON"):
        b = "/tmp/consumer-cmake-" + static
        tree.run("cmake", "-S", "/tmp/consumer", "-B", b, "-DCBEV_CONSUMER_STATIC=" + static)
        tree.run("cmake", "--build", b)
        has_so = any(n.startswith("libcbevents") for n in needed(b + "/consumer"))
        assert has_so == (static == "OFF"), (static, needed(b + "/consumer"))
        check_output("deb find_package static=" + static, tree.run(b + "/consumer", resp),
                     version)


def check_unit_verifies(tree):
    """The installed unit and drop-in, checked by the tree's own systemd
    (Debian 12's), with the installed program and man page."""
    p = tree.run("systemd-analyze", "verify", "/lib/systemd/system/cb2mqtt.service",
                 check=False)
    # verify exits 0 on unknown keys or bad values but says so.
    assert p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(), \
        (p.returncode, p.stdout, p.stderr)
    step("systemd-analyze verify: clean")


def check_remove_purge(tree, before):
    tree.run("apt-get", "remove", "-y", "-qq", *PACKAGES)
    for path in ("usr/bin/cb2mqtt", "usr/bin/cbevents-tail", "usr/include/cbevents"):
        assert not os.path.exists(tree.file(path)), path
    # remove keeps configuration and state (Debian's remove vs purge).
    assert os.path.isfile(tree.file("etc/cb2mqtt/cb2mqtt.ini"))
    assert os.listdir(tree.file("var/lib/cb2mqtt"))
    st = tree.run("dpkg-query", "-W", "-f=${Status}", "cb2mqtt").stdout
    assert st == "deinstall ok config-files", st

    # The libraries have no conffiles: remove left nothing of them to purge.
    tree.run("dpkg", "--purge", *PACKAGES)
    tree.run("apt-get", "autoremove", "--purge", "-y", "-qq")
    for pkg in PACKAGES:
        p = tree.run("dpkg-query", "-W", "-f=${Status}", pkg, check=False)
        assert p.returncode != 0 or p.stdout.startswith("unknown ok not-installed"), \
            (pkg, p.stdout)
    after = tree.snapshot()
    added, removed = sorted(after - before), sorted(before - after)
    # The administrator's token stays (dpkg keeps a directory that is not
    # empty), and so does the system user's account: Debian does not delete
    # system accounts (see debian/cb2mqtt.postrm).
    assert removed == [], removed
    assert added == ["etc/cb2mqtt", "etc/cb2mqtt/cb_token"], added
    assert tree.run("getent", "passwd", USER, check=False).returncode == 0


def test_deb_packages():
    if os.geteuid() != 0:
        raise AssertionError("needs root (debootstrap tree, mounts, chroot)")
    version = run(["dpkg-parsechangelog", "-S", "Version"], cwd=SRC).stdout.strip()
    base = base_tree()
    step("base tree %s" % base)
    out = os.path.join(BUILD, "deb-out")
    shutil.rmtree(out, ignore_errors=True)
    p = run(["bash", os.path.join(SRC, "scripts", "build-deb.sh"), out], check=False,
            timeout=1800)
    if p.returncode != 0:
        raise AssertionError("build-deb.sh failed\n" + p.stderr[-6000:])
    print(p.stderr.strip(), flush=True)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    debs = [os.path.join(out, "%s_%s_%s.deb" % (pkg, version, arch)) for pkg in PACKAGES]
    for d in debs:
        assert os.path.isfile(d), d
    step("built %s" % ", ".join("%s (%d KiB)" % (os.path.basename(d), os.path.getsize(d) // 1024)
                                for d in debs))

    archives = os.path.join(BUILD, "deb-cache", "archives")
    os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
    tools = tools_tree(base, archives)
    work = tempfile.mkdtemp(prefix="deb-run.", dir=os.path.join(BUILD, "deb-cache"))
    cbtest.on_cleanup(lambda: subprocess.call(["rm", "-rf", "--one-file-system", work]))
    root = os.path.join(work, "rootfs")
    run(["cp", "-a", tools, root])
    os.unlink(os.path.join(root, ".cbev-complete"))
    tree = Tree(root)
    before = tree.snapshot()
    tree.mount([(archives, "var/cache/apt/archives")])
    step("fresh copy of the tree")

    os.makedirs(tree.file("tmp/debs"))
    for d in debs:
        shutil.copy(d, tree.file("tmp/debs"))
    tree.run("apt-get", "update", "-qq")
    p = tree.run("apt-get", "install", "-y", "--no-install-recommends",
                 *["/tmp/debs/" + os.path.basename(d) for d in debs])
    new = [l for l in p.stdout.splitlines() if l.startswith("Setting up ")]
    step("apt-get install ./*.deb: " + "; ".join(l[len("Setting up "):] for l in new))
    check_installed(tree, version)
    step("installed: files, conffile, user %s, unit enabled" % USER)
    check_config_and_bridge(tree, version)
    step("--version, --check-config, bridge and cbevents-tail: good")
    check_consumer(tree, version)
    step("consumer: pkg-config, find_package shared and static: good")
    check_unit_verifies(tree)
    check_remove_purge(tree, before)
    step("remove and purge: only the token file and the account are left")


if __name__ == "__main__":
    # Mounts made in a private mount namespace vanish with it, whatever
    # happens to this process.
    if os.geteuid() == 0 and not os.environ.get("CBEV_TEST_DEB_NS") and \
            subprocess.call(["unshare", "--mount", "--propagation", "private", "true"]) == 0:
        os.environ["CBEV_TEST_DEB_NS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable, "-u"] + sys.argv)
    cbtest.run([test_deb_packages])
