#!/usr/bin/env bash
# The long chaos run of cb2mqtt, on demand (ctest runs the short one):
# 100,000 events over two broadcasters, 5 broker restarts, 5 bridge SIGKILLs,
# 20% faulty API answers. Builds cb2mqtt (Debug, ASan+UBSan) if needed, runs
# tests/integration/test_bridge_chaos.py and prints its figures: produced,
# delivered, lost, duplicated (with their bounds), out of order.
# Every knob can be overridden from the environment, e.g.
#   CHAOS_EVENTS=20000 CHAOS_DURATION=60 scripts/chaos.sh
#   BUILD_DIR=...      build folder (default build-chaos)
#   CB2MQTT=...        use this binary instead of building
set -euo pipefail
cd "$(dirname "$0")/.."

export CHAOS_EVENTS=${CHAOS_EVENTS:-100000}
export CHAOS_BROKER_RESTARTS=${CHAOS_BROKER_RESTARTS:-5}
export CHAOS_KILLS=${CHAOS_KILLS:-5}
export CHAOS_FAULT_RATE=${CHAOS_FAULT_RATE:-0.2}
# Production spread over this many seconds (the disruptions fall inside it).
export CHAOS_DURATION=${CHAOS_DURATION:-300}
# Debug logs of 100,000 events are large; info still shows every problem.
export CHAOS_LOG_LEVEL=${CHAOS_LOG_LEVEL:-info}

if [ -z "${CB2MQTT:-}" ]; then
  build=${BUILD_DIR:-build-chaos}
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCBEV_SANITIZE=ON >/dev/null
  cmake --build "$build" -j "$(nproc)" --target cb2mqtt
  export CB2MQTT="$PWD/$build/src/bridge/cb2mqtt"
  export CBEV_BUILD_DIR="$PWD/$build"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "chaos: events=$CHAOS_EVENTS broker_restarts=$CHAOS_BROKER_RESTARTS kills=$CHAOS_KILLS" \
     "fault_rate=$CHAOS_FAULT_RATE duration=${CHAOS_DURATION}s bridge=$CB2MQTT"
exec python3 -u tests/integration/test_bridge_chaos.py
