#!/usr/bin/env bash
# Start or stop a Spark standalone cluster on 127.0.0.1 with pyspark's own spark-class:
# one master and N workers, each in the background, logs and pids in a state folder.
#
#   scripts/standalone-cluster.sh start STATE_DIR [WORKERS] [CORES_PER_WORKER] [MEMORY]
#   scripts/standalone-cluster.sh stop STATE_DIR
#
# `start` prints the master URL (spark://127.0.0.1:PORT) once every worker has registered.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python=python3

action="${1:?usage: standalone-cluster.sh start|stop STATE_DIR}"
state="${2:?usage: standalone-cluster.sh start|stop STATE_DIR}"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
  for pidfile in "$state"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    # spark-class execs java, so the pid is the JVM; kill its process group too.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [[ "$action" == "stop" ]]; then
  stop
  exit 0
fi
[[ "$action" == "start" ]] || { echo "error: unknown action '$action'; use start or stop" >&2; exit 2; }

workers="${3:-2}"
cores="${4:-1}"
memory="${5:-2g}"
mkdir -p "$state"
spark_home="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
spark_class="$spark_home/bin/spark-class"
export SPARK_HOME="$spark_home"
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"

port="$(free_port)"
webui="$(free_port)"
master="spark://127.0.0.1:$port"
"$spark_class" org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$port" --webui-port "$webui" >"$state/master.log" 2>&1 &
echo $! >"$state/master.pid"

for _ in $(seq 1 60); do
  grep -q "I have been elected leader" "$state/master.log" && break
  sleep 1
done
grep -q "I have been elected leader" "$state/master.log" || {
  echo "error: the master did not start; see $state/master.log" >&2; stop; exit 1; }

for i in $(seq 1 "$workers"); do
  "$spark_class" org.apache.spark.deploy.worker.Worker "$master" \
    --host 127.0.0.1 --port "$(free_port)" --webui-port "$(free_port)" \
    --cores "$cores" --memory "$memory" --work-dir "$state/work-$i" \
    >"$state/worker-$i.log" 2>&1 &
  echo $! >"$state/worker-$i.pid"
done

for _ in $(seq 1 60); do
  registered="$(grep -c "Registering worker" "$state/master.log" || true)"
  [[ "$registered" -ge "$workers" ]] && break
  sleep 1
done
if [[ "${registered:-0}" -lt "$workers" ]]; then
  echo "error: only ${registered:-0} of $workers workers registered; see $state/*.log" >&2
  stop
  exit 1
fi
echo "$master"
