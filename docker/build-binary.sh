#!/bin/sh
# Builds the stripped release binary of cb2mqtt exactly as the image ships
# it. docker/Dockerfile runs this in its build stage and
# scripts/check-image.sh runs it on the host, so both test the same build.
#   build-binary.sh SOURCE_DIR BUILD_DIR OUT_FILE
set -eu
src=$1 build=$2 out=$3
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_TESTING=OFF -DCBEV_BUILD_BENCH=OFF -DCBEV_SANITIZE=OFF -DCBEV_FUZZ=OFF >/dev/null
cmake --build "$build" --target cb2mqtt -j "$(nproc)"
mkdir -p "$(dirname "$out")"
install -m 0755 "$build/src/bridge/cb2mqtt" "$out"
strip --strip-unneeded "$out"
