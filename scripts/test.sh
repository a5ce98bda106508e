#!/usr/bin/env bash
# The test command: installs what is missing, configures with -Werror and
# ASan+UBSan, builds, and runs every test. Exits non-zero on any failure.
#   BUILD_DIR=...  build folder (default build-test)
#   CTEST_ARGS=... extra ctest arguments (e.g. "-L unit")
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=${BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCBEV_WERROR=ON -DCBEV_SANITIZE=ON
cmake --build "$build" -j "$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
# shellcheck disable=SC2086
ctest --output-on-failure --timeout 900 ${CTEST_ARGS:-}
cd - >/dev/null
# Memcheck, short form: the unit tests and one bridge test under valgrind
# (scripts/valgrind.sh alone runs the whole suite). VALGRIND=0 skips it.
[ "${VALGRIND:-1}" = 0 ] || scripts/valgrind.sh --short
