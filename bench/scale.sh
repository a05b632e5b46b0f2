#!/usr/bin/env bash
# scale.sh runs issue 19's scale series with the peer harness (cmd/peer)
# against a qmq dev and a NATS JetStream server it starts itself, on free
# ports, in a temporary directory it removes at the end, and prints one
# table per series with the qmq/nats ratio of every point (both systems run
# in the same invocation of the harness, one after the other).
#
#   cd bench && ./scale.sh                      # every series, 1 GiB backlog
#   ./scale.sh --series subjects,groups          # some series
#   ./scale.sh --backlog-gib 10                  # the 10 GiB backlog (long)
#   ./scale.sh --rounds 5                         # more rounds per point
#
# Series (1 KiB messages):
#   subjects  produce msg/s over 1, 10, 100, 1000, 10000 subjects
#   groups    consume deliveries/s of 1, 10, 100 consumer groups on one subject
#   clients   e2e at 10k msg/s spread over 1, 100, 1000 producers (connections)
#   backlog   consume from the start of a --backlog-gib GiB backlog:
#             msg/s, and the servers' peak RSS while it runs
#   present   e2e at 10k msg/s from 1 and 100 producers on one subject,
#             fresh and after --present subjects (33,333) were created
#             (not in the default list: it leaves the servers full)
#
# Each series runs --rounds rounds (3 by default); a round visits every
# point once, each round starting at a different point, and the table shows
# the median over the rounds with qmq's min-max. One pass from the smallest
# point to the largest put any drift of the machine's load into the curve
# (the first, quietest point looked best); interleaved rounds spread it.
#
# Needs: ../bin/qmq (go build -o bin/qmq ./cmd/qmq at the repo root),
# nats-server (NATS_SERVER, default nats-server on PATH or /usr/sbin), jq.
# Figures on a shared machine are noisy: repeat, and compare ratios.
set -euo pipefail

series="subjects,groups,clients,backlog"
backlog_gib=1
duration=5s
systems="qmq,nats"
keep=0
rounds=3
present=33333
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series="$2"; shift 2 ;;
	--backlog-gib) backlog_gib="$2"; shift 2 ;;
	--duration) duration="$2"; shift 2 ;;
	--systems) systems="$2"; shift 2 ;;
	--keep) keep=1; shift ;;
	--rounds) rounds="$2"; shift 2 ;;
	--present) present="$2"; shift 2 ;;
	-h|--help) sed -n '2,33p' "$0"; exit 0 ;;
	*) echo "scale.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
qmq="$here/../bin/qmq"
nats_server=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$qmq" ] || { echo "scale.sh: $qmq missing: go build -o bin/qmq ./cmd/qmq" >&2; exit 2; }
command -v jq >/dev/null || { echo "scale.sh: needs jq" >&2; exit 2; }

dir=$(mktemp -d /tmp/qmq-scale-XXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$keep" = 0 ]; then rm -rf "$dir"; else echo "kept $dir" >&2; fi
}
trap cleanup EXIT

# free_port prints a TCP port nothing listens on, with the next three free
# too (qmq dev uses the broker port + 1 and + 2).
free_port() {
	python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randrange(30000, 60000)
    if all(free(p + i) for i in range(4)):
        print(p); break
EOF
}

meta_http=$(free_port); meta_port=$(free_port); broker_port=$(free_port); nats_port=$(free_port)
"$qmq" dev --data "$dir/dev" --meta-http-port "$meta_http" --meta-port "$meta_port" --broker-port "$broker_port" \
	--console=off --backup-http=-1 --delay-port=-1 --log-level warn >"$dir/qmq.log" 2>&1 &
qmq_pid=$!; pids+=("$qmq_pid")
"$nats_server" -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
nats_pid=$!; pids+=("$nats_pid")
meta="http://127.0.0.1:$meta_http/meta/address"
for _ in $(seq 100); do
	curl -fs "$meta" >/dev/null 2>&1 && break
	sleep 0.2
done
sleep 1
(cd "$here" && go build -o "$dir/peer" ./cmd/peer)
peer() { "$dir/peer" --meta "$meta" --nats "nats://127.0.0.1:$nats_port" --systems "$systems" --quiet --json "$@" 2>>"$dir/peer.log"; }

echo "# scale series, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# qmq dev pid $qmq_pid, nats-server pid $nats_pid (${nats_server}), data in $dir"

mkdir -p "$dir/json"

# measure runs the harness for every point of a series, --rounds times,
# round r starting at point r (mod the number of points), and keeps each
# answer in $dir/json/<series>-<point>-<round>.json. $1: series, $2: the
# points (space-separated), then the harness's arguments, in which POINT
# stands for the point.
measure() {
	local name=$1 points=($2) r i k n
	shift 2
	for ((r = 0; r < rounds; r++)); do
		for ((i = 0; i < ${#points[@]}; i++)); do
			k=$(((i + r) % ${#points[@]}))
			n=${points[$k]}
			if peer "${@//POINT/$n}" >"$dir/json/$name-$n-$r.json"; then
				printf '.' >&2
			else
				# One failed point is reported and left out of the medians;
				# the other points still run.
				rm -f "$dir/json/$name-$n-$r.json"
				printf '\nscale.sh: the harness failed on %s %s (round %d); its last lines:\n' "$name" "$n" "$r" >&2
				tail -n 5 "$dir/peer.log" >&2
			fi
		done
	done
	printf '\n' >&2
}

# row prints one table row from the rounds of a point: the point, each
# system's median, the qmq/<peer> ratios of the medians, qmq's min-max and,
# with $4, qmq's median as a percentage of $4 ($1: label, $2: jq path, $3:
# the files' prefix $dir/json/<series>-<point>).
row() {
	local label=$1 path=$2 prefix=$3 base=${4:-}
	if ! compgen -G "$prefix-*.json" >/dev/null; then
		printf '%s\t(every round failed)\n' "$label"
		return
	fi
	jq -rs --arg point "$label" --arg systems "$systems" --arg base "$base" "
		(\$systems | split(\",\")) as \$s
		| def fmt: if . >= 100 then round else . * 1000 | round / 1000 end | tostring;
		  def med(x): [.[] | (.results[x] | $path // 0)] | sort | .[length / 2 | floor];
		  (med(\"qmq\")) as \$q
		| [\$point] + [\$s[] as \$x | med(\$x) | fmt]
		+ [\$s[] as \$x | select(\$x != \"qmq\") | med(\$x) as \$p
			| if \$q > 0 and \$p > 0 then (\$q / \$p * 100 | round / 100 | tostring) + \"x\" else \"-\" end]
		+ [[.[] | (.results.qmq | $path // 0)] | sort | \"\\(.[0] | fmt)-\\(.[-1] | fmt)\"]
		+ (if \$base != \"\" and (\$base | tonumber) > 0 then [(\$q / (\$base | tonumber) * 100 | round | tostring) + \"%\"] else [] end)
		| @tsv" "$prefix"-*.json
}
# median prints qmq's median of a point's rounds ($1: jq path, $2: prefix).
median() { compgen -G "$2-*.json" >/dev/null && jq -s "[.[] | (.results.qmq | $1 // 0)] | sort | .[length / 2 | floor]" "$2"-*.json || echo 0; }
header() {
	local first=$1 extra=${2:-}
	printf '%s' "$first"
	IFS=, read -ra s <<<"$systems"
	for x in "${s[@]}"; do printf '\t%s' "$x"; done
	for x in "${s[@]}"; do [ "$x" != qmq ] && printf '\tqmq/%s' "$x"; done
	printf '\tqmq min-max%s\n' "$extra"
}

if [[ ",$series," == *,subjects,* ]]; then
	echo; echo "## produce msg/s by subjects (1 producer, $duration; median of $rounds interleaved rounds)"
	points="1 10 100 1000 10000"
	measure subjects "$points" --mode produce --subjects POINT --duration "$duration" --warmup 2s
	base=$(median '.produce.msg_per_sec' "$dir/json/subjects-1")
	header subjects $'\tqmq vs 1 subject'
	for n in $points; do row "$n" '.produce.msg_per_sec' "$dir/json/subjects-$n" "$base"; done
fi

if [[ ",$series," == *,groups,* ]]; then
	echo; echo "## consume deliveries/s by consumer groups (1 subject, 50,000 messages pre-filled, every group reads all; median of $rounds rounds)"
	points="1 10 100"
	measure groups "$points" --mode consume --groups POINT --count 50000 --duration "$duration"
	header groups
	for g in $points; do row "$g" '.consume.msg_per_sec' "$dir/json/groups-$g"; done
fi

if [[ ",$series," == *,clients,* ]]; then
	echo; echo "## e2e at 10,000 msg/s spread over N producers (each its own connections), 1 subject, $duration; median of $rounds rounds"
	points="1 100 1000"
	measure clients "$points" --mode e2e --producers POINT --rate 10000 --duration "$duration" --warmup 0
	header 'producers, metric'
	for n in $points; do
		row "$n msg/s" '.e2e.msg_per_sec' "$dir/json/clients-$n"
		row "$n p50 ms" '.e2e.latency_p50_ms' "$dir/json/clients-$n"
		row "$n p99 ms" '.e2e.latency_p99_ms' "$dir/json/clients-$n"
		row "$n p99.9 ms" '.e2e.latency_p999_ms' "$dir/json/clients-$n"
	done
fi

if [[ ",$series," == *,present,* ]]; then
	# Many subjects present, one busy: what a broker that has seen tens of
	# thousands of subjects (each a consumer log, each in every message
	# checkpoint) does to the latency of the one in use. Measured fresh,
	# then after --present subjects were created, in the same servers.
	points="1 100"
	echo; echo "## e2e at 10,000 msg/s over 1 subject from N producers, before and after $present subjects were created ($duration; median of $rounds rounds)"
	measure present-fresh "$points" --mode e2e --producers POINT --rate 10000 --duration "$duration" --warmup 0
	printf 'creating %d subjects...\n' "$present" >&2
	# One second of producing over all of them, in turn (more messages than
	# subjects), then until qmq's dispatcher has caught up: a write to each
	# of more subjects than consumerlog.max.open reopens a log, which is slow.
	peer --mode produce --subjects "$present" --duration 1s --warmup 0 >/dev/null
	for _ in $(seq 600); do
		lag=$(curl -fs "http://127.0.0.1:$((broker_port + 2))/metrics" | awk '/^qmq_store_replay_lag_bytes/ {print $2}')
		[ "${lag:-1}" = 0 ] && break
		sleep 1
	done
	if [ "${lag:-1}" = 0 ]; then
		echo "qmq dispatcher caught up" >&2
	else
		echo "scale.sh: qmq's dispatcher is still ${lag:-?} bytes behind after 10 min (qmq_store_replay_lag_bytes); the figures after creating the subjects include it — more subjects than consumerlog.max.open? raise ulimit -n" >&2
	fi
	# The first run after creating them is left out: the broker is still
	# opening the new logs then.
	peer --mode e2e --rate 10000 --duration 5s --warmup 0 >/dev/null
	measure present-after "$points" --mode e2e --producers POINT --rate 10000 --duration "$duration" --warmup 0
	header 'producers, metric'
	for n in $points; do
		for when in fresh after; do
			row "$n p50 ms $when" '.e2e.latency_p50_ms' "$dir/json/present-$when-$n"
			row "$n p99 ms $when" '.e2e.latency_p99_ms' "$dir/json/present-$when-$n"
			row "$n p99.9 ms $when" '.e2e.latency_p999_ms' "$dir/json/present-$when-$n"
		done
	done
fi

# rss_kib prints the resident set of pid in KiB: all of it (VmRSS), then
# the anonymous part (RssAnon: heap and stacks, without the pages of mapped
# files, which qmq's memory-mapped logs add to VmRSS).
rss_kib() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {print r+0, a+0}' "/proc/$1/status" 2>/dev/null || echo 0 0; }

if [[ ",$series," == *,backlog,* ]]; then
	count=$((backlog_gib * 1024 * 1024))
	echo; echo "## consume from the start of a ${backlog_gib} GiB backlog ($count messages of 1 KiB, pre-filled by 1 producer)"
	read -r q0 qa0 < <(rss_kib "$qmq_pid"); read -r n0 na0 < <(rss_kib "$nats_pid")
	: >"$dir/rss"
	(
		while sleep 1; do echo "$(rss_kib "$qmq_pid") $(rss_kib "$nats_pid")" >>"$dir/rss"; done
	) &
	sampler=$!
	# --duration bounds the consume phase at 4x it: allow a minute per GiB.
	# One round: a backlog takes minutes to fill.
	peer --mode consume --count "$count" --duration "$((backlog_gib * 60))s" >"$dir/json/backlog-$backlog_gib-0.json"
	kill "$sampler"; wait "$sampler" 2>/dev/null || true
	header metric
	for m in "consume msg/s:.consume.msg_per_sec" "consume seconds:.consume.seconds" "missing:.consume.missing"; do
		row "${m%%:*}" "${m#*:}" "$dir/json/backlog-$backlog_gib"
	done
	read -r qmax qamax nmax namax < <(awk '{for (i = 1; i <= 4; i++) if ($i > m[i]) m[i] = $i} END {print m[1]+0, m[2]+0, m[3]+0, m[4]+0}' "$dir/rss")
	printf 'server RSS MiB before\t%d\t%d\n' $((q0 / 1024)) $((n0 / 1024))
	printf 'server RSS MiB peak (fill + consume)\t%d\t%d\n' $((qmax / 1024)) $((nmax / 1024))
	printf 'server anonymous RSS MiB before\t%d\t%d\n' $((qa0 / 1024)) $((na0 / 1024))
	printf 'server anonymous RSS MiB peak\t%d\t%d\n' $((qamax / 1024)) $((namax / 1024))
	# RSS counts the pages of the servers' memory-mapped logs that are
	# resident: qmq maps its segments, so its RSS follows what was read
	# recently, not what it allocated.
fi
