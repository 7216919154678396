#!/usr/bin/env bash
# Runs a command with the local servers the adapter tests talk to, then stops them.
#
#   tests/servers/with-servers.sh cargo nextest run --workspace
#
# Starts (on free loopback ports) and exports:
#   SNAPWATCH_MOTO_ENDPOINT        moto server (DynamoDB, SNS, SQS, EventBridge, IAM, STS, EC2, RDS…)
#   SNAPWATCH_DYNALITE_ENDPOINT    dynalite (a second, strict DynamoDB implementation)
#   SNAPWATCH_AZURITE_TABLE_ENDPOINT  Azurite Table Storage (account devstoreaccount1)
#   FIRESTORE_EMULATOR_HOST        the Firestore emulator (only if gcloud, its emulator component
#                                  and Java are installed; otherwise SNAPWATCH_FIRESTORE_UNAVAILABLE
#                                  explains why, and the Firestore tests print SKIPPED lines)
# Tools come from .tools/ (`make tools`). Logs go to target/servers/*.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SNAPWATCH_TOOLS:-$root/.tools}
logs=$root/target/servers
mkdir -p "$logs"
pids=()
# Each server runs in its own process group (setsid), and stopping it stops the whole group: the
# Firestore emulator is gcloud → a shell script → java, and killing gcloud alone left the JVM
# running after every test run.
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # A JVM takes a moment to exit after SIGTERM; give each group 10 s, then SIGKILL what is left.
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # name url-or-hostport seconds [pid]
  local name=$1 probe=$2 limit=$3 pid=${4:-} i
  for ((i = 0; i < limit * 10; i++)); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "with-servers: $name exited before it was ready; log:" >&2
      tail -n 30 "$logs/$name.log" >&2 || true
      exit 1
    fi
    if [[ $probe == http* ]]; then
      curl -s -o /dev/null "$probe" && return 0
    else
      (exec 3<>"/dev/tcp/${probe%:*}/${probe#*:}") 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  echo "with-servers: $name did not become ready within ${limit}s; log:" >&2
  tail -n 30 "$logs/$name.log" >&2 || true
  exit 1
}

need() {
  [ -e "$1" ] || { echo "with-servers: $1 is missing: run 'make tools' first" >&2; exit 1; }
}

command -v curl >/dev/null 2>&1 || { echo "with-servers: curl is required (apt-get install curl)" >&2; exit 1; }
need "$tools/venv/bin/moto_server"
port=$(free_port)
MOTO_EC2_LOAD_DEFAULT_AMIS=false setsid "$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logs/moto.log" 2>&1 &
pids+=($!)
export SNAPWATCH_MOTO_ENDPOINT="http://127.0.0.1:$port"

need "$tools/node/node_modules/dynalite/cli.js"
port=$(free_port)
setsid node "$tools/node/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$port" --createTableMs 0 >"$logs/dynalite.log" 2>&1 &
pids+=($!)
export SNAPWATCH_DYNALITE_ENDPOINT="http://127.0.0.1:$port"

need "$tools/node/node_modules/azurite/dist/src/table/main.js"
port=$(free_port)
setsid node "$tools/node/node_modules/azurite/dist/src/table/main.js" --tableHost 127.0.0.1 --tablePort "$port" \
  --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose >"$logs/azurite.log" 2>&1 &
pids+=($!)
export SNAPWATCH_AZURITE_TABLE_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"

# Why the Firestore emulator cannot run here, or nothing. Checked up front (in milliseconds) so a
# machine without it gets the promised SKIPPED lines at once instead of a 90 s wait and a failure.
firestore_unavailable() {
  local gcloud sdk
  gcloud=$(command -v gcloud 2>/dev/null) || { echo "gcloud (with the Firestore emulator) is not installed on this machine"; return; }
  sdk=$(dirname "$(dirname "$(readlink -f "$gcloud")")")
  if [ ! -d "$sdk/platform/cloud-firestore-emulator" ]; then
    echo "gcloud is installed ($sdk) but not its Firestore emulator component (gcloud components install cloud-firestore-emulator, or the google-cloud-cli-firestore-emulator package)"
    return
  fi
  command -v java >/dev/null 2>&1 && java -version >/dev/null 2>&1 ||
    echo "the Firestore emulator needs Java (11 or later), which is not installed or does not run"
}

firestore_pid=
reason=$(firestore_unavailable)
if [ -z "$reason" ]; then
  port=$(free_port)
  setsid gcloud emulators firestore start --host-port="127.0.0.1:$port" --quiet >"$logs/firestore.log" 2>&1 &
  firestore_pid=$!
  pids+=($firestore_pid)
  export FIRESTORE_EMULATOR_HOST="127.0.0.1:$port"
else
  export SNAPWATCH_FIRESTORE_UNAVAILABLE="$reason"
  echo "with-servers: SKIPPED: Firestore emulator: $SNAPWATCH_FIRESTORE_UNAVAILABLE; the Firestore tests say so" >&2
fi

wait_for moto "$SNAPWATCH_MOTO_ENDPOINT/moto-api/" 60
wait_for dynalite "127.0.0.1:${SNAPWATCH_DYNALITE_ENDPOINT##*:}" 30
wait_for azurite "127.0.0.1:$(sed 's#.*:\([0-9]*\)/.*#\1#' <<<"$SNAPWATCH_AZURITE_TABLE_ENDPOINT")" 60
if [ -n "${FIRESTORE_EMULATOR_HOST:-}" ]; then
  wait_for firestore "http://$FIRESTORE_EMULATOR_HOST/" 90 "$firestore_pid"
fi
echo "with-servers: moto $SNAPWATCH_MOTO_ENDPOINT, dynalite $SNAPWATCH_DYNALITE_ENDPOINT, azurite $SNAPWATCH_AZURITE_TABLE_ENDPOINT, firestore ${FIRESTORE_EMULATOR_HOST:-none}" >&2
set +e
"$@"
status=$?
exit $status
