#!/usr/bin/env bash
# Memcheck run: builds without sanitizers (valgrind and ASan do not mix),
# runs the unit tests, the fuzz corpus replays and the integration tests
# (tail and bridge; not image/install/nodered/chaos) with every program
# under valgrind memcheck, then scans the per-process logs. Exits non-zero
# when a test fails or any process had a memcheck error or a definitely
# lost block.
#   --short          unit tests + two bridge integration tests (scripts/test.sh)
#   VG_BUILD_DIR=... build folder (default build-valgrind)
#   VG_LOG_DIR=...   where the vg.<pid>.log files go (default <build>/valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

short=0
[ "${1:-}" = "--short" ] && short=1

command -v valgrind >/dev/null || scripts/deps.sh # valgrind is in its list

build=${VG_BUILD_DIR:-build-valgrind}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCBEV_WERROR=ON -DCBEV_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
build=$(cd "$build" && pwd)
logs=${VG_LOG_DIR:-$build/valgrind}
rm -rf "$logs"
mkdir -p "$logs/bin"

# One wrapper per program: exec keeps the pid, so exit codes and signals
# reach the test as if valgrind were not there (99 = memcheck error).
vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
    --error-exitcode=99 --num-callers=30 "--log-file=$logs/vg.%p.log")
wrap() { # name binary
  printf '#!/bin/sh\nexec %s %s "$@"\n' "${vg[*]}" "$2" >"$logs/bin/$1"
  chmod +x "$logs/bin/$1"
}
wrap cbevents-tail "$build/src/tail/cbevents-tail"
wrap cb2mqtt "$build/src/bridge/cb2mqtt"

failed=()
run() { # label command...
  local label=$1 t0=$SECONDS rc=0
  shift
  "$@" >"$logs/out.$label.txt" 2>&1 || rc=$?
  case $rc in
    0) printf 'ok    %-36s %4d s\n' "$label" $((SECONDS - t0)) ;;
    77) printf 'skip  %-36s\n' "$label" ;;
    *) printf 'FAIL  %-36s %4d s (rc %d, see %s)\n' "$label" $((SECONDS - t0)) "$rc" \
         "$logs/out.$label.txt"
       failed+=("$label") ;;
  esac
}
integ() { # test.py
  env CBEVENTS_TAIL="$logs/bin/cbevents-tail" CB2MQTT="$logs/bin/cb2mqtt" \
    CBEV_SOURCE_DIR="$src" CBEV_BUILD_DIR="$build" PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH="$src/tests/integration" \
    python3 -u "$@"
}

for t in "$build"/tests/unit/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  run "unit.$n" "${vg[@]}" "$t"
done
if [ $short = 0 ]; then
  for t in "$build"/tests/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    run "fuzz.${n#fuzz_}" "${vg[@]}" "$t" "$src/tests/fuzz/corpus/${n#fuzz_}"
  done
  tests=("$src"/tests/integration/test_{tail,bridge}_*.py)
else
  # topics: the common path; reload: 100 reloads (add, remove, reconnect)
  tests=("$src/tests/integration/test_bridge_topics.py"
         "$src/tests/integration/test_bridge_reload.py")
fi
for t in "${tests[@]}"; do
  n=$(basename "$t" .py)
  # chaos: too long under memcheck; idle: CPU-share thresholds mean nothing there
  [[ $n == *chaos* || $n == *idle* ]] && continue
  run "it.$n" integ "$t"
done

# Every process wrote one log with a summary at exit; processes the tests
# SIGKILL on purpose have none (counted apart). Memcheck errors and
# definitely lost bytes fail the run.
procs=0 killed=0 errs=0 lost=0 bad=()
for f in "$logs"/vg.*.log; do
  [ -e "$f" ] || continue
  if ! grep -q 'ERROR SUMMARY:' "$f"; then
    killed=$((killed + 1))
    continue
  fi
  procs=$((procs + 1))
  e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tr -d , | tail -1)
  l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | tail -1)
  errs=$((errs + ${e:-0}))
  lost=$((lost + ${l:-0}))
  if [ "${e:-0}" != 0 ] || [ "${l:-0}" != 0 ]; then
    bad+=("$f")
  fi
done
echo "valgrind: $procs processes checked ($killed more killed before their summary)," \
  "$errs errors, $lost bytes definitely lost (logs in $logs)"
for f in "${bad[@]}"; do
  echo "--- $f"
  grep -m1 -A1 'Command:' "$f" || true
  grep -E 'Invalid|uninitialised|definitely lost|ERROR SUMMARY' "$f" | head -20
done
if [ ${#failed[@]} -gt 0 ] || [ ${#bad[@]} -gt 0 ] || [ "$procs" = 0 ]; then
  echo "valgrind: FAILED (${#failed[@]} tests failed, ${#bad[@]} processes with errors)"
  exit 1
fi
echo "valgrind: passed"
