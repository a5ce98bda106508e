#!/usr/bin/env bash
# Tests the runtime stage of docker/Dockerfile without a Docker engine.
#
# It rebuilds that stage's filesystem with debootstrap (bookworm, minbase),
# installs exactly the packages of docker/runtime-packages.txt (the list the
# Dockerfile installs), copies in a release cb2mqtt built by
# docker/build-binary.sh (as the build stage does), creates the same
# non-root user (10001), and runs the bridge there under chroot as that
# user against a mosquitto broker and the fake Events API on loopback. It
# checks that every library resolves (ldd), that the bridge publishes an
# event, that --healthcheck passes, and that SIGTERM stops it with exit 0
# and a retained "offline".
#
# With --addon it checks the Home Assistant add-on's final stage
# (cb2mqtt/Dockerfile) instead: the same tree plus cb2mqtt/runtime-packages.txt
# (cached as a second layer), the entrypoint installed as cb2mqtt-addon, a
# root-owned /data with options.json as the Supervisor leaves it, and a fake
# Supervisor (tests/integration/fake_supervisor.py) serving the broker. The
# entrypoint runs as root, as the Supervisor starts it, and must drop to
# uid 10001 before the bridge runs; --healthcheck runs as root with no
# settings but the INI the entrypoint wrote, as the image's HEALTHCHECK does.
#
#   scripts/check-image.sh [--addon] [--build-dir DIR] [--rootfs-only] [CB2MQTT_BINARY]
#
# --rootfs-only builds (or checks) the cached tree, prints its path and
# exits: tests/integration/test_deb.py installs the Debian packages on top
# of it.
#
# The Debian mirror is the one this machine's apt uses, read from its
# sources at run time. The debootstrapped tree is cached under
# BUILD_DIR/image-cache, keyed by the package list, so reruns take seconds.
# Exit status: 0 pass, 1 fail, 77 skipped because Debian's packages cannot
# be reached.
set -euo pipefail

SKIP=77
SUITE=bookworm
VARIANT=minbase
UID_GID=10001:10001
TOKEN=imagecheck-token-9f3e1c
EVENT_TYPES="tip fanclub_join media_purchase chat_message private_message
  user_enter user_leave follow unfollow broadcast_start broadcast_stop
  room_subject_change"

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${CBEV_BUILD_DIR:-$root/build-image}
binary=""
addon=""
rootfs_only=""
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --addon) addon=--addon; shift ;;
    --rootfs-only) rootfs_only=--rootfs-only; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check-image: unknown option $1" >&2; exit 2 ;;
    *) binary=$1; shift ;;
  esac
done
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
pkg_list=$root/docker/runtime-packages.txt

say() { echo "check-image: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

# debootstrap, mount and chroot need root.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -E "$0" $addon --build-dir "$build_dir" $rootfs_only ${binary:+"$binary"}
  fi
  fail "needs root (debootstrap, mount, chroot) and sudo is not available"
fi

# Run in a private mount namespace when possible: whatever happens, the
# kernel drops our mounts when the last process of the namespace exits.
if [ -z "${CBEV_CHECK_IMAGE_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
  exec env CBEV_CHECK_IMAGE_NS=1 unshare --mount --propagation private \
    "$0" $addon --build-dir "$build_dir" $rootfs_only ${binary:+"$binary"}
fi

# The package list, with the same filter as the Dockerfile.
packages=$(sed -e 's/#.*//' "$pkg_list" | xargs)
[ -n "$packages" ] || fail "$pkg_list names no package"

# What this script copies from the Dockerfile's final stage must still be
# what the Dockerfile does.
dockerfile=$root/docker/Dockerfile
for want in "COPY docker/runtime-packages.txt /tmp/runtime-packages.txt" \
            "sed -e 's/#.*//' /tmp/runtime-packages.txt" \
            "xargs apt-get install -y --no-install-recommends" \
            "FROM debian:$SUITE-slim" \
            "useradd --uid 10001 --gid 10001" \
            "install -d -o 10001 -g 10001 -m 0700 /data" \
            "COPY --from=build /out/cb2mqtt /usr/local/bin/cb2mqtt" \
            "RUN docker/build-binary.sh" \
            "ENV CB2MQTT_EVENTS_STATE_DIR=/data" \
            "USER 10001:10001"; do
  grep -qF -- "$want" "$dockerfile" || fail "docker/Dockerfile no longer has: $want (update this script too)"
done
addon_pkg_list=$root/cb2mqtt/runtime-packages.txt
addon_dockerfile=$root/cb2mqtt/Dockerfile
addon_packages=""
if [ -n "$addon" ]; then
  addon_packages=$(sed -e 's/#.*//' "$addon_pkg_list" | xargs)
  [ -n "$addon_packages" ] || fail "$addon_pkg_list names no package"
  # What this script does for the add-on's final stage is what its
  # Dockerfile does (in the Supervisor's build context, cb2mqtt/).
  for want in "COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt" \
              "COPY runtime-packages.txt /tmp/addon-packages.txt" \
              "sed -e 's/#.*//' /tmp/runtime-packages.txt /tmp/addon-packages.txt" \
              "xargs apt-get install -y --no-install-recommends" \
              "install -m 0644 /src/docker/runtime-packages.txt /out/runtime-packages.txt" \
              "/src/docker/build-binary.sh /src /build /out/cb2mqtt" \
              "useradd --uid 10001 --gid 10001" \
              "COPY --from=build /out/cb2mqtt /usr/local/bin/cb2mqtt" \
              "COPY entrypoint.py /usr/local/bin/cb2mqtt-addon" \
              'ENTRYPOINT ["/usr/local/bin/cb2mqtt-addon"]' \
              'CMD ["cb2mqtt", "--healthcheck"]'; do
    grep -qF -- "$want" "$addon_dockerfile" || fail "cb2mqtt/Dockerfile no longer has: $want (update this script too)"
  done
  ! grep -q '^USER ' "$addon_dockerfile" || fail "cb2mqtt/Dockerfile sets USER: the entrypoint must start as root"
fi

# "URI SUITE" for each Debian source of apt that serves our suite, its
# updates or its security suite (one-line and deb822 formats).
apt_sources() {
  python3 - "$SUITE" <<'PY'
import glob, sys
suite = sys.argv[1]
wanted = {suite, suite + "-updates", suite + "-security"}
found = []
def add(types, uris, suites, comps):
    if "deb" in types and "main" in comps:
        for u in uris:
            for s in suites:
                if s in wanted and (u.rstrip("/"), s) not in found:
                    found.append((u.rstrip("/"), s))
def one_line(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        f = line.split("#", 1)[0].split()
        if len(f) < 4 or f[0] != "deb":
            continue
        if f[1].startswith("["):  # options like [signed-by=...]
            while f and not f[1].endswith("]"):
                f.pop(1)
            f.pop(1)
        add(["deb"], [f[1]], [f[2]], f[3:])
def deb822(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, val = line.partition(":")
            key = key.strip().lower()
            fields[key] = val.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        add(fields.get("types", "").split(), fields.get("uris", "").split(),
            fields.get("suites", "").split(), fields.get("components", "").split())
paths = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
for p in paths:
    try:
        one_line(p)
    except OSError:
        pass
for p in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    deb822(p)
for u, s in found:
    print(u, s)
PY
}

sources=$(apt_sources)
mirror=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$sources")
[ -n "$mirror" ] || fail "apt has no source for Debian $SUITE main (checked /etc/apt/sources.list*)"

# Skip only when Debian's packages cannot be reached; every other problem
# is a failure.
if ! curl -fsS --max-time 30 -o /dev/null "$mirror/dists/$SUITE/Release"; then
  say "SKIP: cannot reach the Debian mirror $mirror (from this machine's apt sources)"
  exit $SKIP
fi

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; } >"$build_dir/apt-debootstrap.log" 2>&1; then
    say "SKIP: debootstrap is missing and apt cannot fetch it"
    exit $SKIP
  fi
fi

# Mounts, processes and temporary trees are undone on every exit path.
mounts=()
pids=()
work=""
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  mounts=()
  if [ -n "$work" ] && [ -d "$work" ]; then
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The chroot needs /proc (ldd, /proc/self) and /dev/urandom (TLS, jitter).
mount_runtime() {
  local rootfs=$1 dev
  mount -t proc proc "$rootfs/proc"
  mounts+=("$rootfs/proc")
  for dev in null urandom; do
    rm -f "$rootfs/dev/$dev"
    touch "$rootfs/dev/$dev"
    mount --bind "/dev/$dev" "$rootfs/dev/$dev"
    mounts+=("$rootfs/dev/$dev")
  done
}
umount_runtime() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}"
  done
  mounts=()
}

# Installs packages into the tree being built ($work) with its own apt,
# logging to log; what names the step in the failure.
chroot_install() { # packages log what
  mount_runtime "$work"
  # shellcheck disable=SC2086
  if ! { chroot "$work" apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive chroot "$work" apt-get install -y -qq --no-install-recommends $1 &&
         chroot "$work" apt-get clean; } >"$2" 2>&1; then
    tail -20 "$2" >&2
    fail "apt-get install of $3 in the chroot failed"
  fi
  umount_runtime
  rm -rf "$work/var/lib/apt/lists/"*
}
# Fails unless every one of packages is installed in tree.
check_installed() { # tree packages what
  local p
  for p in $2; do
    chroot "$1" dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
      fail "package $p is not installed in the cached $3"
  done
}

# 1. The cached runtime tree: debootstrap + the package list.
key=$(printf '%s\n' "v1 $SUITE $VARIANT" "$packages" | sha256sum | cut -c1-16)
cache=$build_dir/image-cache/rootfs-$key
if [ ! -f "$cache/.cbev-complete" ]; then
  rm -rf --one-file-system "$build_dir/image-cache"
  mkdir -p "$build_dir/image-cache"
  tmp=$build_dir/image-cache/tmp-rootfs
  say "debootstrap $SUITE ($VARIANT) from $mirror (a few minutes, cached afterwards)"
  if ! debootstrap --variant="$VARIANT" "$SUITE" "$tmp" "$mirror" >"$build_dir/image-cache/debootstrap.log" 2>&1; then
    tail -20 "$build_dir/image-cache/debootstrap.log" >&2
    fail "debootstrap failed (log: $build_dir/image-cache/debootstrap.log)"
  fi
  # The same suites as the host's apt, like debian:bookworm-slim has.
  awk '{ print "deb " $1 " " $2 " main" }' <<<"$sources" >"$tmp/etc/apt/sources.list"
  work=$tmp
  say "installing into the tree: $packages"
  chroot_install "$packages" "$build_dir/image-cache/apt.log" "the runtime packages"
  work=""
  echo "$packages" >"$tmp/.cbev-complete"
  mv "$tmp" "$cache"
fi
check_installed "$cache" "$packages" tree
if [ -n "$rootfs_only" ]; then
  echo "$cache"
  exit 0
fi

# 1b. The add-on's layer on top of it, cached beside it.
if [ -n "$addon" ]; then
  akey=$(printf '%s\n' "$key" "$addon_packages" | sha256sum | cut -c1-16)
  acache=$build_dir/image-cache/addon-rootfs-$akey
  if [ ! -f "$acache/.cbev-complete" ]; then
    rm -rf --one-file-system "$build_dir"/image-cache/addon-rootfs-* "$build_dir/image-cache/tmp-addon"
    tmp=$build_dir/image-cache/tmp-addon
    cp -a "$cache" "$tmp"
    work=$tmp
    say "installing the add-on's packages into a copy of the tree: $addon_packages"
    chroot_install "$addon_packages" "$build_dir/image-cache/apt-addon.log" "the add-on's packages"
    work=""
    echo "$packages $addon_packages" >"$tmp/.cbev-complete"
    mv "$tmp" "$acache"
  fi
  check_installed "$acache" "$addon_packages" "add-on tree"
  cache=$acache
fi

# 2. The binary, built the way the Dockerfile's build stage builds it.
if [ -z "$binary" ]; then
  say "building the release binary (docker/build-binary.sh)"
  binary=$build_dir/image-build/out/cb2mqtt
  "$root/docker/build-binary.sh" "$root" "$build_dir/image-build/build" "$binary" >&2 ||
    fail "docker/build-binary.sh failed"
fi
[ -x "$binary" ] || fail "no cb2mqtt binary at $binary"

# 3. A fresh copy of the tree with the final stage's steps applied.
work=$(mktemp -d "$build_dir/image-run.XXXXXX")
rootfs=$work/rootfs
cp -a "$cache" "$rootfs"
rm -f "$rootfs/.cbev-complete"
# The same commands as the Dockerfile's final stage.
chroot "$rootfs" groupadd --gid 10001 cb2mqtt
chroot "$rootfs" useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin cb2mqtt
install -m 0755 -o 0 -g 0 "$binary" "$rootfs/usr/local/bin/cb2mqtt"
if [ -z "$addon" ]; then
  chroot "$rootfs" install -d -o 10001 -g 10001 -m 0700 /data
  # What `secrets: [cb_token]` gives the container.
  install -d -m 0755 "$rootfs/run/secrets"
  printf '%s\n' "$TOKEN" >"$rootfs/run/secrets/cb_token"
  chown 10001:10001 "$rootfs/run/secrets/cb_token"
  chmod 0400 "$rootfs/run/secrets/cb_token"
else
  install -m 0755 -o 0 -g 0 "$root/cb2mqtt/entrypoint.py" "$rootfs/usr/local/bin/cb2mqtt-addon"
  # The Supervisor's /data: root's, with the options it validated.
  install -d -o 0 -g 0 -m 0755 "$rootfs/data"
  python3 -c 'import json,sys; json.dump({"broadcasters": [{"name": "alice", "token": sys.argv[1]}],
    "publish": [], "payload": "normalized", "expose_anonymous_tippers": False, "base_topic": "cb",
    "discovery": True, "discovery_prefix": "homeassistant", "log_level": "debug"}, sys.stdout)' \
    "$TOKEN" >"$rootfs/data/options.json"
  chmod 0600 "$rootfs/data/options.json"
fi
mount_runtime "$rootfs"

# 4. Every library the binary needs is in the tree.
ldd_out=$(chroot "$rootfs" ldd /usr/local/bin/cb2mqtt 2>&1) || fail "ldd failed: $ldd_out"
if grep -q "not found" <<<"$ldd_out"; then
  grep "not found" <<<"$ldd_out" >&2
  fail "libraries missing from the runtime tree (see above)"
fi
say "ldd: $(grep -c '=>' <<<"$ldd_out") libraries, all resolved"
chroot --userspec=$UID_GID "$rootfs" /usr/local/bin/cb2mqtt --version >&2 ||
  fail "cb2mqtt --version does not run as uid 10001"

# 5. A broker and the fake Events API on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS COMMAND...: poll until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
mqtt_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
port_open() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null; }
wait_for 10 port_open "$mqtt_port" || fail "mosquitto did not start: $(cat "$work/mosquitto.log")"

python3 "$root/tests/integration/fake_api.py" --port 0 --port-file "$work/api.port" \
  --broadcaster "alice:$TOKEN" --preload 5 --max-wait 1 >"$work/api.log" 2>&1 &
pids+=($!)
wait_for 15 test -s "$work/api.port" || fail "the fake API did not start: $(cat "$work/api.log")"
api_port=$(cat "$work/api.port")

topics=()
for t in $EVENT_TYPES; do topics+=(-t "cb/alice/$t"); done
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -v -C 1 -W 30 "${topics[@]}" >"$work/event.txt" 2>&1 &
sub_pid=$!
pids+=($sub_pid)
sleep 0.5 # let the subscription settle before the first event can exist

# 6. The bridge, in a container-like environment, as uid 10001.
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -z "$addon" ]; then
  bridge_env=(env -i "$path_env" HOSTNAME=check-image HOME=/nonexistent
    CB2MQTT_EVENTS_STATE_DIR=/data
    CB_USERNAME=alice CB_TOKEN_FILE=/run/secrets/cb_token
    CB2MQTT_MQTT_URL="mqtt://127.0.0.1:$mqtt_port"
    CB2MQTT_EVENTS_API="http://127.0.0.1:$api_port/events"
    CB2MQTT_EVENTS_TIMEOUT=1)
  health_env=("${bridge_env[@]}")
  health_user=(--userspec=$UID_GID)
  "${bridge_env[@]}" chroot --userspec=$UID_GID "$rootfs" /usr/local/bin/cb2mqtt \
    --log-level debug >"$work/bridge.log" 2>&1 &
else
  # The add-on: the Supervisor with the broker's service, the entrypoint
  # started as root with the environment the Supervisor gives (plus the
  # fake API's address and a short long-poll, the bridge's own variables).
  sup_token=check-image-supervisor-5b2f
  python3 "$root/tests/integration/fake_supervisor.py" --port-file "$work/sup.port" \
    --token "$sup_token" \
    --mqtt "{\"host\": \"127.0.0.1\", \"port\": $mqtt_port, \"ssl\": false, \"addon\": \"core_mosquitto\"}" \
    >"$work/sup.log" 2>&1 &
  pids+=($!)
  wait_for 15 test -s "$work/sup.port" || fail "the fake Supervisor did not start: $(cat "$work/sup.log")"
  bridge_env=(env -i "$path_env" HOSTNAME=check-image TZ=UTC
    SUPERVISOR_TOKEN="$sup_token" CBADDON_SUPERVISOR_URL="http://127.0.0.1:$(cat "$work/sup.port")"
    CB2MQTT_EVENTS_API="http://127.0.0.1:$api_port/events"
    CB2MQTT_EVENTS_TIMEOUT=1)
  # The image's HEALTHCHECK: root, the image's environment only.
  health_env=(env -i "$path_env")
  health_user=()
  "${bridge_env[@]}" chroot "$rootfs" /usr/local/bin/cb2mqtt-addon >"$work/bridge.log" 2>&1 &
fi
bridge_pid=$!
pids+=($bridge_pid)

dump() { say "bridge log:"; tail -40 "$work/bridge.log" >&2; say "fake API log:"; tail -10 "$work/api.log" >&2; }
if ! wait "$sub_pid"; then
  dump
  fail "no event on cb/alice/<event_type> within 30 s: $(cat "$work/event.txt")"
fi
read -r topic payload <"$work/event.txt"
python3 -c 'import json,sys; e=json.loads(sys.argv[1]); assert e["broadcaster"]=="alice" and e["event_type"] and e["id"], e' "$payload" ||
  fail "the event on $topic is not a normalized event: $payload"
say "published: $topic"

healthy() { "${health_env[@]}" chroot "${health_user[@]}" "$rootfs" /usr/local/bin/cb2mqtt --healthcheck >/dev/null 2>&1; }
wait_for 15 healthy || { dump; fail "cb2mqtt --healthcheck does not report healthy"; }
say "healthcheck: healthy"

if [ -n "$addon" ]; then
  # The entrypoint exec'd the bridge (same pid) after dropping root.
  comm=$(cat "/proc/$bridge_pid/comm")
  [ "$comm" = cb2mqtt ] || fail "pid $bridge_pid is '$comm', not the bridge: the entrypoint did not exec"
  uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$bridge_pid/status")
  [ "$uids" = "10001 10001 10001 10001" ] || fail "the bridge runs with uids '$uids' (want 10001 only)"
  groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$bridge_pid/status" | xargs)
  [ -z "$groups" ] || fail "the bridge kept supplementary groups: $groups"
  if tr '\0' '\n' <"/proc/$bridge_pid/environ" | grep -q SUPERVISOR_TOKEN; then
    fail "the bridge inherited SUPERVISOR_TOKEN"
  fi
  for f in "$rootfs"/run/cb2mqtt/secrets/*; do
    [ "$(stat -c '%a %u' "$f")" = "600 10001" ] || fail "$f: $(stat -c '%a %u' "$f") (want 600 10001)"
  done
  [ "$(stat -c '%a %u' "$rootfs/run/cb2mqtt/secrets")" = "700 10001" ] ||
    fail "the secrets directory is $(stat -c '%a %u' "$rootfs/run/cb2mqtt/secrets")"
  grep -qF "$TOKEN" "$rootfs/etc/cb2mqtt/cb2mqtt.ini" && fail "the token is in the INI"
  say "add-on: the entrypoint dropped to uid 10001 and exec'd the bridge; secrets 0600"
fi

kill -0 "$bridge_pid" 2>/dev/null || { dump; fail "the bridge died"; }
kill -TERM "$bridge_pid"
deadline=$((SECONDS + 15))
while kill -0 "$bridge_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
kill -0 "$bridge_pid" 2>/dev/null && { dump; fail "the bridge did not stop within 15 s of SIGTERM"; }
rc=0
wait "$bridge_pid" || rc=$?
[ "$rc" -eq 0 ] || { dump; fail "the bridge exited $rc after SIGTERM (want 0)"; }
status=$(mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -C 1 -W 5 -t cb/bridge/status 2>&1) || true
[ "$status" = offline ] || fail "cb/bridge/status is '$status' after SIGTERM (want offline)"
avail=$(mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -C 1 -W 5 -t cb/alice/availability 2>&1) || true
[ "$avail" = offline ] || fail "cb/alice/availability is '$avail' after SIGTERM (want offline)"
say "SIGTERM: exit 0, cb/bridge/status and cb/alice/availability offline"

# The non-root user could write its state, and the log holds no token.
[ -n "$(find "$rootfs/data" -type f -user 10001 | head -1)" ] ||
  fail "nothing written to /data by uid 10001"
if grep -qF "$TOKEN" "$work/bridge.log"; then
  fail "the token appears in the bridge log"
fi
say "PASS"
