#!/usr/bin/env bash
# The demo: a local mosquitto, the fake Events API playing a scripted
# broadcast, cb2mqtt between them, and mosquitto_sub printing what arrives.
# Runs about 30 s (DEMO_SECONDS), or until Ctrl-C, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/deps.sh
build=${BUILD_DIR:-build-demo}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target cb2mqtt >/dev/null

work=$(mktemp -d /tmp/cb2mqtt-demo.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  # The bridge first, so it can publish "offline" while the broker is up.
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  echo "demo: stopped everything."
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

mqtt_port=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mosq_pid=$!

python3 tests/integration/fake_api.py --port 0 --port-file "$work/api.port" \
  --broadcaster alice:demo-token-alice --scenario show >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 100); do [ -s "$work/api.port" ] && break; sleep 0.1; done
api_port=$(cat "$work/api.port")

echo "demo: mosquitto on 127.0.0.1:$mqtt_port, fake Events API on 127.0.0.1:$api_port"
echo "demo: watching 'cb/#' (topic, then payload); Ctrl-C stops early."
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -v -t 'cb/#' &
sub_pid=$!
sleep 0.5

printf '%s' demo-token-alice >"$work/token"
# An empty settings file, so a /etc/cb2mqtt/cb2mqtt.ini on this machine is
# not read (-c wants a regular file: /dev/null is refused).
: >"$work/cb2mqtt.ini"
CB2MQTT_MQTT_URL="mqtt://127.0.0.1:$mqtt_port" \
CB2MQTT_EVENTS_API="http://127.0.0.1:$api_port/events" \
CB2MQTT_EVENTS_STATE_DIR="$work/state" \
CB2MQTT_HOMEASSISTANT_DISCOVERY=false \
CB_USERNAME=alice CB_TOKEN_FILE="$work/token" \
  "$build/src/bridge/cb2mqtt" -c "$work/cb2mqtt.ini" --log-level warn &
bridge_pid=$!
pids=("$bridge_pid" "$sub_pid" "$api_pid" "$mosq_pid")

end=$((SECONDS + ${DEMO_SECONDS:-30}))
while [ $SECONDS -lt $end ] && kill -0 "$bridge_pid" 2>/dev/null; do sleep 1; done
if ! kill -0 "$bridge_pid" 2>/dev/null; then
  rc=0
  wait "$bridge_pid" || rc=$?
  echo "demo: cb2mqtt stopped early (exit $rc); see its messages above." >&2
  exit 1
fi
