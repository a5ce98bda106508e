#!/usr/bin/env bash
# Builds the Debian packages cb2mqtt, libcbevents0 and libcbevents-dev the
# Debian way (debian/: dh with the cmake build system) and checks them with
# lintian.
#
#   scripts/build-deb.sh OUTDIR
#
# It installs what is missing (the project's build dependencies and
# debhelper, dpkg-dev, lintian) through scripts/deps.sh, copies the source
# tree (tracked and untracked files, not what .gitignore names, e.g. build
# folders) to a temporary folder, runs `dpkg-buildpackage -b -us -uc` there,
# copies the .deb files (with the -dbgsym ones) into OUTDIR, and runs
# lintian on the .changes. Any lintian error fails the script; warnings are
# listed, and each one kept is overridden in debian/*.lintian-overrides
# with its reason (overridden tags are shown too). OUTDIR also gets
# build.log and lintian.txt.
#   DEB_BUILD_OPTIONS=nocheck   skips the unit tests run during the build
# Exit status: 0 built and lintian-clean of errors, 1 otherwise, 2 usage.
set -euo pipefail

if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

say() { echo "build-deb: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

"$root/scripts/deps.sh" debhelper dpkg-dev lintian

# The package version is the project's: a changelog entry that does not
# match CMakeLists.txt would ship a mislabelled library.
deb_version=$(cd "$root" && dpkg-parsechangelog -S Version)
cmake_version=$(sed -n 's/^project(cb2mqtt VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[ "$deb_version" = "$cmake_version" ] ||
  fail "debian/changelog says $deb_version, CMakeLists.txt says $cmake_version"

work=$(mktemp -d "${TMPDIR:-/tmp}/cb2mqtt-deb.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
src=$work/cb2mqtt-$deb_version
mkdir "$src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -xf - -C "$src"
else
  tar -C "$root" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

# Build-Depends the deps.sh list lacks (a new one in debian/control).
if ! (cd "$src" && dpkg-checkbuilddeps) 2>/dev/null; then
  say "installing the missing Build-Depends of debian/control"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq --no-install-recommends "$src"
fi

say "dpkg-buildpackage -b -us -uc in $src"
DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)"
export DEB_BUILD_OPTIONS
if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log" >&2
  fail "dpkg-buildpackage failed (log: $out/build.log)"
fi

arch=$(dpkg --print-architecture)
changes=$work/cb2mqtt_${deb_version}_$arch.changes
[ -f "$changes" ] || fail "no $changes"
debs=("$work"/*.deb)
[ -e "${debs[0]}" ] || fail "dpkg-buildpackage made no .deb"
cp "${debs[@]}" "$out/"
for d in "${debs[@]}"; do
  say "$(basename "$d"): $(du -k "$d" | cut -f1) KiB"
done

# --fail-on error: warnings do not fail, but each one kept must be
# overridden with its reason in debian/*.lintian-overrides, so a new
# warning shows up here in the listing below.
rc=0
lintian --fail-on error --display-info --show-overrides "$changes" >"$out/lintian.txt" 2>&1 || rc=$?
cat "$out/lintian.txt" >&2
[ "$rc" -eq 0 ] || fail "lintian found errors (above; also in $out/lintian.txt)"
warnings=$(grep -c '^W: ' "$out/lintian.txt" || true)
errors=$(grep -c '^E: ' "$out/lintian.txt" || true)
[ "$errors" -eq 0 ] || fail "lintian: $errors errors"
say "lintian: 0 errors, $warnings warnings not overridden, $(grep -c '^O: ' "$out/lintian.txt" || true) overridden"
say "packages in $out"
