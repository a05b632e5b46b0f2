#!/usr/bin/env bash
# ha-ratio.sh: produce throughput of a broker group with wait.slave.wrote=true as a ratio of the
# same broker without a slave, measured in one run (issue 5's target: at least 85%).
#
#   make build && bench/ha-ratio.sh [--pairs N] [--quota PERCENT] [--async] [--nats] [--set key=value]… [-- qmq bench flags…]
#
# Each pair runs `lone` (metaserver + master, wait.slave.wrote=false) and `slave` (metaserver +
# master + slave, wait.slave.wrote=true) as separate processes on this machine, with
# `qmq bench --mode produce` as the load, and prints msg/s and the CPU seconds of every process.
# On one machine the slave and the load generator take CPU from the master: --quota confines the
# load generator, the master and the slave to PERCENT of one CPU each (a cgroup v1 cpu quota, so
# root), which is how three separate hosts of that size would behave; without it they share all
# cores. Ports 18480-18494 must be free.
#
# --async adds a third run to each pair, `async`: the slave attached but wait.slave.wrote=false,
# which tells the cost of copying from the cost of waiting (slave/async is what RocketMQ compares
# when it documents sync double-write as ~10% slower than asynchronous replication).
#
# --nats measures the peer the same way in each pair: NATS JetStream (nats-server on PATH) as one
# server with a one-replica stream (`nats1`, the lone master's place and cgroup) and as a two-server
# cluster with a two-replica stream led by the server the load connects to (`nats2`: the leader in
# the master's cgroup, the follower in the slave's), loaded by bench/cmd/peer with the same flags.
# A JetStream publish is acknowledged once a quorum has stored it; with two replicas that is both,
# as with wait.slave.wrote. Ports 18500-18511 must be free too.
#
# Also printed per run: CPU microseconds and context switches per message of master and slave, and
# the messages each sync request carried. Diagnostics: --env-master/--env-slave/--env-client K=V
# (e.g. GOMAXPROCS=1), --perf DIR (perf record -g of the brokers; PERF_STAT=1: perf stat;
# PERF_TRACE=1: perf trace -s), QMQ_BIN=<another qmq build> (e.g. one with a patched runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QMQ_BIN:-$PWD/bin/qmq} # QMQ_BIN: another build to measure
pairs=3 quota=0 async=0 nats=0 sets=() perfdir= env_master=() env_slave=() env_client=()
while [ $# -gt 0 ]; do
  case $1 in
    --pairs) pairs=$2; shift 2 ;;
    --async) async=1; shift ;;
    --nats) nats=1; shift ;;
    --quota) quota=$2; shift 2 ;;
    --set) sets+=("$2"); shift 2 ;; # broker.properties key for both brokers
    --env-master) env_master+=("$2"); shift 2 ;; # environment of the master (e.g. GOMAXPROCS=1), both runs
    --env-slave) env_slave+=("$2"); shift 2 ;;
    --env-client) env_client+=("$2"); shift 2 ;;
    --perf) perfdir=$2; shift 2 ;;  # record CPU profiles of the brokers (perf record -g) into this directory
    --) shift; break ;;
    *) echo "ha-ratio.sh: unknown flag $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -x "$Q" ] || { echo "ha-ratio.sh: $Q is missing: run make build" >&2; exit 1; }
if [ "$nats" = 1 ]; then
  command -v nats-server >/dev/null || { echo "ha-ratio.sh: --nats needs nats-server on PATH" >&2; exit 1; }
  PEER=$(mktemp -d /tmp/qmq-ha-peer.XXXX)/peer
  (cd bench && go build -o "$PEER" ./cmd/peer) || { echo "ha-ratio.sh: cannot build bench/cmd/peer" >&2; exit 1; }
fi
CG=/sys/fs/cgroup/cpu
if [ "$quota" != 0 ]; then
  [ -w $CG ] || { echo "ha-ratio.sh: --quota needs the cgroup v1 cpu controller at $CG, writable (root)" >&2; exit 1; }
  for g in client master slave; do
    mkdir -p $CG/qmq-ha-$g
    echo 10000 > $CG/qmq-ha-$g/cpu.cfs_period_us # short periods: a throttled process waits at most a few ms
    echo $((quota * 100)) > $CG/qmq-ha-$g/cpu.cfs_quota_us
  done
fi
# confine NAME CMD…: run CMD in NAME's cgroup (when --quota is set); the shell execs CMD, so $! is CMD.
confine() {
  local g=$1; shift
  if [ "$quota" != 0 ]; then
    exec sh -c 'echo $$ > '$CG'/qmq-ha-$0/cgroup.procs; exec "$@"' "$g" "$@"
  else
    exec "$@"
  fi
}
# switches PID: context switches of all the process's threads so far.
switches() { if [ -n "${1:-}" ]; then cat /proc/$1/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; else echo 0; fi; }
ticks() { if [ -n "${1:-}" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
alive() { for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
waitfor() { # URL PATTERN
  for _ in $(seq 1 150); do curl -sf "$1" 2>/dev/null | grep -qi "$2" && return 0; sleep 0.1; done
  echo "ha-ratio.sh: $1 never matched $2" >&2; return 1
}

# Whatever stops the script (an error, ^C) stops the processes of the run in progress.
running=()
trap 'kill -9 "${running[@]}" 2>/dev/null || true' EXIT

# run MODE [bench flags]: prints "MODE msg/s client_cpu master_cpu slave_cpu"
run() {
  local mode=$1; shift
  local d; d=$(mktemp -d /tmp/qmq-ha-ratio.XXXX)
  # qmq dev --slave writes both brokers' config and registers them; then each runs alone.
  $Q dev --data "$d" --meta-http-port 18480 --meta-port 18481 --broker-port 18482 --log-level warn --slave > "$d/dev.out" 2>&1 &
  local dev=$!
  running=($dev)
  waitfor http://127.0.0.1:18494/health '"role":"slave"'
  kill -INT $dev; wait $dev || true
  for kv in "${sets[@]}"; do echo "$kv" | tee -a "$d/conf/broker.properties" >> "$d/conf-slave/broker.properties"; done
  if [ "$mode" != slave ]; then sed -i 's/^wait.slave.wrote=true/wait.slave.wrote=false/' "$d/conf/broker.properties"; fi
  $Q metaserver --conf "$d/conf" --log-level warn > "$d/meta.out" 2>&1 &
  local meta=$! master slave=
  (confine master env "${env_master[@]}" "$Q" broker --conf "$d/conf" --log-level warn > "$d/master.out" 2>&1) &
  master=$!
  if [ "$mode" != lone ]; then
    (confine slave env "${env_slave[@]}" "$Q" broker --conf "$d/conf-slave" --log-level warn > "$d/slave.out" 2>&1) &
    slave=$!
  fi
  running=($meta $master $slave)
  waitfor http://127.0.0.1:18484/health '"online":true'
  [ "$mode" != lone ] && waitfor http://127.0.0.1:18494/health '"role":"slave"'
  sleep 1
  local m0 s0 m1 s1 mx0 sx0 mx1 sx1 out
  m0=$(ticks $master); s0=$(ticks "$slave"); mx0=$(switches $master); sx0=$(switches "$slave")
  local perfs=()
  if [ -n "$perfdir" ]; then
    mkdir -p "$perfdir"
    local tool=(record -q -F 999 -g) ext=data role pid
    if [ "${PERF_STAT:-}" = 1 ]; then tool=(stat -e task-clock,context-switches,cpu-migrations,page-faults) ext=stat; fi
    if [ "${PERF_TRACE:-}" = 1 ]; then tool=(trace -s) ext=trace; fi
    for role in master slave; do
      pid=${!role}
      [ -n "$pid" ] || continue
      perf "${tool[@]}" -p "$pid" -o "$perfdir/$mode-$role.$ext" -- sleep 5 >/dev/null 2>&1 & perfs+=($!)
    done
  fi
  out=$( (confine client env "${env_client[@]}" /usr/bin/time -f "client_cpu %U %S" "$Q" bench --meta http://127.0.0.1:18480/meta/address --mode produce --duration 5s "$@") 2>&1) ||
    { echo "ha-ratio.sh: qmq bench failed (logs in $d):" >&2; echo "$out" | tail -n 5 >&2; return 1; }
  m1=$(ticks $master); s1=$(ticks "$slave"); mx1=$(switches $master); sx1=$(switches "$slave")
  local cycles
  cycles=$(curl -s http://127.0.0.1:18484/metrics | awk '/^qmq_replication_sync_requests_total\{type="message"\}/ {print $2}')
  [ ${#perfs[@]} -gt 0 ] && wait "${perfs[@]}"
  local rate cpu
  rate=$(echo "$out" | grep -oE '= +[0-9]+ msg/s' | grep -oE '[0-9]+' | head -1)
  cpu=$(echo "$out" | awk '/client_cpu/ {printf "%.2f", $2 + $3}')
  printf '%-5s %8s msg/s   cpu s: client %s master %s slave %s\n' "$mode" "${rate:-?}" "${cpu:-?}" \
    "$(echo "$m0 $m1" | awk '{printf "%.2f", ($2 - $1) / 100}')" "$(echo "$s0 $s1" | awk '{printf "%.2f", ($2 - $1) / 100}')"
  # Per message of the measured run (6 s with the warm-up, so slightly high): CPU, context switches, messages per sync request.
  # CPU per message is what decides the ratio on separate hosts, where the master is the bottleneck.
  echo "$rate $mx0 $mx1 $sx0 $sx1 ${cycles:-0} $m0 $m1 $s0 $s1" | awk '{n = $1 * 6; if (n > 0) printf "      per msg: master %.2f us, slave %.2f us; switches master %.2f slave %.2f; sync requests %d (%.0f msg each)\n", ($8 - $7) * 1e4 / n, ($10 - $9) * 1e4 / n, ($3 - $2) / n, ($5 - $4) / n, $6, ($6 > 0 ? n / $6 : 0)}'
  kill -INT $master $slave 2>/dev/null || true
  for _ in $(seq 1 50); do alive $master $slave || break; sleep 0.2; done
  if alive $master $slave; then echo "ha-ratio.sh: a broker ignored SIGINT for 10 s; killing it (logs in $d)" >&2; kill -9 $master $slave 2>/dev/null; return 1; fi
  kill -INT $meta; wait $meta || true
  rm -rf "$d"
  RATE=${rate:-0}
}

# run_nats REPLICAS [bench flags]: like run, for NATS JetStream with a stream of REPLICAS (1 or 2) replicas.
run_nats() {
  local replicas=$1; shift
  local d; d=$(mktemp -d /tmp/qmq-ha-nats.XXXX)
  local a b= out
  if [ "$replicas" = 1 ]; then
    (confine master nats-server -a 127.0.0.1 -p 18500 -js -sd "$d/a" > "$d/a.log" 2>&1) &
    a=$!
  else
    local cluster=(--cluster_name qmqha)
    (confine master nats-server -a 127.0.0.1 -p 18500 -n ha-a "${cluster[@]}" --cluster nats://127.0.0.1:18510 \
      --routes nats://127.0.0.1:18511 -js -sd "$d/a" > "$d/a.log" 2>&1) &
    a=$!
    (confine slave nats-server -a 127.0.0.1 -p 18501 -n ha-b "${cluster[@]}" --cluster nats://127.0.0.1:18511 \
      --routes nats://127.0.0.1:18510 -js -sd "$d/b" > "$d/b.log" 2>&1) &
    b=$!
  fi
  running=($a $b)
  sleep 1
  local m0 s0 m1 s1
  m0=$(ticks $a); s0=$(ticks "$b")
  out=$( (confine client env "${env_client[@]}" /usr/bin/time -f "client_cpu %U %S" "$PEER" --systems nats --nats nats://127.0.0.1:18500 \
    --nats-replicas "$replicas" --mode produce --duration 5s "$@") 2>&1) ||
    { echo "ha-ratio.sh: the NATS peer failed (logs in $d):" >&2; echo "$out" | tail -n 5 >&2; return 1; }
  m1=$(ticks $a); s1=$(ticks "$b")
  local rate cpu
  rate=$(echo "$out" | grep -oE '= +[0-9]+ msg/s' | grep -oE '[0-9]+' | head -1)
  cpu=$(echo "$out" | awk '/client_cpu/ {printf "%.2f", $2 + $3}')
  printf '%-5s %8s msg/s   cpu s: client %s leader %s follower %s\n' "nats$replicas" "${rate:-?}" "${cpu:-?}" \
    "$(echo "$m0 $m1" | awk '{printf "%.2f", ($2 - $1) / 100}')" "$(echo "$s0 $s1" | awk '{printf "%.2f", ($2 - $1) / 100}')"
  kill -INT $a $b 2>/dev/null || true
  for _ in $(seq 1 50); do alive $a $b || break; sleep 0.2; done
  kill -9 $a $b 2>/dev/null || true
  wait $a $b 2>/dev/null || true
  rm -rf "$d"
  RATE=${rate:-0}
}

echo "ha-ratio: $pairs pairs; quota ${quota}% of a CPU per process (0 = shared); broker keys: ${sets[*]:-none}; bench flags: $*"
ratios=() async_ratios=() sync_async=() nats_ratios=()
ratio() { echo "$1 $2" | awk '{printf "%.2f", ($2 > 0 ? $1 / $2 : 0)}'; }
median() { printf '%s\n' "${@:2}" | sort -n | awk -v what="$1" '{a[NR] = $1} END {printf "median %s = %s (of %d pairs)\n", what, a[int((NR + 1) / 2)], NR}'; }
for i in $(seq 1 "$pairs"); do
  run lone "$@"; lone=$RATE
  run slave "$@"; with=$RATE
  ratios+=("$(ratio "$with" "$lone")")
  if [ "$async" = 1 ]; then
    run async "$@"; asy=$RATE
    async_ratios+=("$(ratio "$asy" "$lone")") sync_async+=("$(ratio "$with" "$asy")")
    echo "pair $i: slave/lone = ${ratios[-1]}, async/lone = ${async_ratios[-1]}, slave/async = ${sync_async[-1]}"
  else
    echo "pair $i: slave/lone = ${ratios[-1]}"
  fi
  if [ "$nats" = 1 ]; then
    run_nats 1 "$@"; n1=$RATE
    run_nats 2 "$@"; n2=$RATE
    nats_ratios+=("$(ratio "$n2" "$n1")")
    echo "pair $i: peer nats2/nats1 = ${nats_ratios[-1]}"
  fi
done
median slave/lone "${ratios[@]}"
if [ "$nats" = 1 ]; then median "nats2/nats1 (the peer)" "${nats_ratios[@]}"; fi
if [ "$async" = 1 ]; then median async/lone "${async_ratios[@]}"; median slave/async "${sync_async[@]}"; fi
