#!/usr/bin/env bash
# Installs every build and test dependency that is missing, from Debian 12's
# packages. Runs apt-get directly as root, through sudo otherwise.
#   scripts/deps.sh [EXTRA_PACKAGE...]   also installs these (build-deb.sh
#                                        adds the packaging tools)
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang
      libcurl4-openssl-dev libcjson-dev libinih-dev libmosquitto-dev
      libmicrohttpd-dev prometheus
      libcmocka-dev mosquitto mosquitto-clients openssl python3 valgrind
      ca-certificates curl procps "$@")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
