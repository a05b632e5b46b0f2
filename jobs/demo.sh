#!/usr/bin/env bash
# jobs/demo.sh (make nomad-demo): the README's Nomad deployment on one machine, as a try-out.
#
# Starts a Consul dev agent and a Nomad dev agent (the client with raw_exec and three host
# volumes, as jobs/nomadtest configures the test agent), puts the admin token and the pair's
# sync secret in the jobs' Nomad variables, runs jobs/qmq-metaserver.nomad.hcl and one broker
# pair of jobs/qmq-broker.nomad.hcl with raw_exec (both brokers on this machine, so with their
# own ports), waits until the master is online with its slave caught up, and prints how to send
# and consume. Ctrl-C stops the jobs and both agents (only the processes it started).
#
#   jobs/demo.sh           run until Ctrl-C
#   jobs/demo.sh --check   send and consume one message once ready, then stop (exit 0 if it came back)
#   jobs/demo.sh --bundle  the whole bundle (README, The whole bundle on Nomad): also a second broker
#                          pair, a delay pair, a backup per group, two watchdogs and the console, every
#                          job with small cpu/memory reservations so that one machine holds them all;
#                          prints the console, backup and metaserver URLs (--bundle --check also
#                          sends a delayed message, finds a message in a backup and opens the console)
#
# Needs bin/qmq (make build) and consul and nomad on PATH (make consul nomad puts them in
# .tools/bin; make nomad-demo does all of it). Ports: Consul 8500 (DNS 8600), Nomad 4646,
# metaserver 8080/20880, brokers 20881-20882/8081 and 20891-20892/8091 (with --bundle also the
# second pair 20883-20884/8083 and 20893-20894/8093, the delay pair 20801-20802/8071 and
# 20811-20812/8072, backups 8082 and 8092, the console 8090), each moved up to the next free port
# when taken. Everything lives under data/nomad-demo (QMQ_DEMO_DIR), wiped at start.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
QMQ=${QMQ:-$ROOT/bin/qmq}
DEMO=${QMQ_DEMO_DIR:-$ROOT/data/nomad-demo}
GROUP=demo_group
GROUP2=demo_group2
DGROUP=demo_delay
CHECK=false
BUNDLE=false
for arg in "$@"; do
	case "$arg" in
	--check) CHECK=true ;;
	--bundle) BUNDLE=true ;;
	*)
		echo "usage: jobs/demo.sh [--bundle] [--check]" >&2
		exit 2
		;;
	esac
done

for b in consul nomad curl; do
	command -v "$b" >/dev/null || {
		echo "jobs/demo.sh: $b is not on PATH; run make nomad-demo (it builds consul and nomad into .tools/bin) or make consul nomad and PATH=\$PWD/.tools/bin:\$PATH" >&2
		exit 1
	}
done
[ -x "$QMQ" ] || {
	echo "jobs/demo.sh: $QMQ is missing; run make build" >&2
	exit 1
}
QMQ=$(cd "$(dirname "$QMQ")" && pwd)/$(basename "$QMQ") # the jobs need an absolute path

t0=$(date +%s%N)
elapsed() { awk -v n="$(date +%s%N)" -v t="$t0" 'BEGIN { printf "%.1f", (n - t) / 1e9 }'; }
say() { echo "[demo $(elapsed)s] $*"; }

# pick VAR default: the first port from default up that nothing listens on and that is not picked yet.
USED=" "
taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick() {
	local p=$2
	while taken "$p" || [[ $USED == *" $p "* ]]; do p=$((p + 1)); done
	USED+="$p "
	printf -v "$1" %d "$p"
}
pick CONSUL_HTTP 8500
pick CONSUL_DNS 8600
pick CONSUL_SERVER 8300
pick CONSUL_SERF_LAN 8301
pick CONSUL_SERF_WAN 8302
pick NOMAD_HTTP 4646
pick NOMAD_RPC 4647
pick NOMAD_SERF 4648
pick META_HTTP 8080
pick META_TCP 20880
pick A_PORT 20881
pick A_SYNC 20882
pick A_HTTP 8081
pick B_PORT 20891
pick B_SYNC 20892
pick B_HTTP 8091
if $BUNDLE; then
	pick C_PORT 20883
	pick C_SYNC 20884
	pick C_HTTP 8083
	pick D_PORT 20893
	pick D_SYNC 20894
	pick D_HTTP 8093
	pick DA_PORT 20801
	pick DA_SYNC 20802
	pick DA_HTTP 8071
	pick DB_PORT 20811
	pick DB_SYNC 20812
	pick DB_HTTP 8072
	pick BK1_HTTP 8082
	pick BK2_HTTP 8092
	pick CONSOLE_HTTP 8090
fi

export CONSUL_HTTP_ADDR=127.0.0.1:$CONSUL_HTTP NOMAD_ADDR=http://127.0.0.1:$NOMAD_HTTP
META="consul://qmq-metaserver?dns=127.0.0.1:$CONSUL_DNS"

rm -rf "$DEMO"
VOLUMES="meta a b"
$BUNDLE && VOLUMES+=" c d delay-a delay-b backup1 backup2"
JOBS="qmq-broker-$GROUP qmq-metaserver"
$BUNDLE && JOBS="qmq-console qmq-watchdog qmq-backup-$GROUP qmq-backup-$GROUP2 qmq-delay-$DGROUP qmq-broker-$GROUP2 $JOBS"
mkdir -p "$DEMO/nomad"
for v in $VOLUMES; do mkdir -p "$DEMO/volumes/$v"; done

CONSUL_PID= NOMAD_PID=
stop_all() {
	trap - INT TERM EXIT
	say "stopping the jobs and the agents"
	if [ -n "$NOMAD_PID" ] && kill -0 "$NOMAD_PID" 2>/dev/null; then
		# Stopping the jobs first lets the brokers and the metaserver deregister cleanly; a dev
		# agent also stops its allocations when it exits.
		for job in $JOBS; do
			nomad job stop -purge -detach "$job" >/dev/null 2>&1 || true
		done
		for _ in $(seq 150); do
			curl -sf "$NOMAD_ADDR/v1/allocations" | grep -q '"ClientStatus":"running"' || break
			sleep 0.2
		done
		kill -INT "$NOMAD_PID" 2>/dev/null || true
		wait "$NOMAD_PID" 2>/dev/null || true
	fi
	if [ -n "$CONSUL_PID" ] && kill -0 "$CONSUL_PID" 2>/dev/null; then
		kill -INT "$CONSUL_PID" 2>/dev/null || true
		wait "$CONSUL_PID" 2>/dev/null || true
	fi
	say "stopped (agent logs: $DEMO/consul.log, $DEMO/nomad.log)"
}
trap stop_all EXIT
trap 'exit 0' INT TERM # Ctrl-C is how the demo ends: stop_all runs on EXIT

fail() {
	echo "jobs/demo.sh: $*" >&2
	exit 1
}

# until SECONDS WHAT COMMAND...: retry COMMAND every 0.5 s, failing the demo after SECONDS.
until_ok() {
	local limit=$1 what=$2
	shift 2
	local deadline=$(($(date +%s) + limit))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what (logs under $DEMO)"
		kill -0 "$CONSUL_PID" 2>/dev/null || fail "the consul agent exited; see $DEMO/consul.log"
		[ -z "$NOMAD_PID" ] || kill -0 "$NOMAD_PID" 2>/dev/null || fail "the nomad agent exited; see $DEMO/nomad.log"
		sleep 0.5
	done
}

cat >"$DEMO/consul.hcl" <<EOF
ports {
  http     = $CONSUL_HTTP
  dns      = $CONSUL_DNS
  server   = $CONSUL_SERVER
  serf_lan = $CONSUL_SERF_LAN
  serf_wan = $CONSUL_SERF_WAN
  grpc     = -1
  grpc_tls = -1
}
EOF
say "starting consul agent -dev (HTTP 127.0.0.1:$CONSUL_HTTP, DNS $CONSUL_DNS)"
# setsid: Ctrl-C reaches this script only, which stops the agents in order.
setsid consul agent -dev -bind 127.0.0.1 -client 127.0.0.1 -config-file "$DEMO/consul.hcl" >"$DEMO/consul.log" 2>&1 &
CONSUL_PID=$!
until_ok 60 "the consul agent's leader" sh -c "curl -sf $CONSUL_HTTP_ADDR/v1/status/leader | grep -q :"

# What jobs/nomadtest gives the test agent: no cloud fingerprinting (the env_aws fingerprinter of
# the nomad that make nomad builds fails the client's start), raw_exec, and the host volumes.
cat >"$DEMO/nomad.hcl" <<EOF
data_dir             = "$DEMO/nomad"
bind_addr            = "127.0.0.1"
disable_update_check = true

ports {
  http = $NOMAD_HTTP
  rpc  = $NOMAD_RPC
  serf = $NOMAD_SERF
}

client {
  enabled = true
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
$(for v in $VOLUMES; do
		name=qmq-broker-$v
		case $v in meta) name=qmq-metaserver ;; delay-* | backup*) name=qmq-$v ;; esac
		printf '  host_volume "%s" {\n    path      = "%s"\n    read_only = false\n  }\n' "$name" "$DEMO/volumes/$v"
	done)
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

consul {
  address = "$CONSUL_HTTP_ADDR"
}
EOF
say "starting nomad agent -dev (HTTP $NOMAD_ADDR, raw_exec, host volumes under $DEMO/volumes)"
setsid nomad agent -dev -config "$DEMO/nomad.hcl" >"$DEMO/nomad.log" 2>&1 &
NOMAD_PID=$!
until_ok 90 "the nomad client node ready" sh -c "nomad node status | grep -qw ready"

# The token and the secret go where the README puts them: the jobs' Nomad variables.
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
DELAY_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
nomad var put nomad/jobs/qmq-metaserver admin_token="$TOKEN" delay_admin_secret="$DELAY_SECRET" >/dev/null
nomad var put "nomad/jobs/qmq-broker-$GROUP" admin_token="$TOKEN" sync_secret="$SECRET" >/dev/null
if $BUNDLE; then
	SECRET2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	DSECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	nomad var put "nomad/jobs/qmq-broker-$GROUP2" admin_token="$TOKEN" sync_secret="$SECRET2" >/dev/null
	nomad var put "nomad/jobs/qmq-delay-$DGROUP" admin_token="$TOKEN" sync_secret="$DSECRET" delay_admin_secret="$DELAY_SECRET" >/dev/null
	# A backup proves its group's sync secret on the slave's sync port.
	nomad var put "nomad/jobs/qmq-backup-$GROUP" admin_token="$TOKEN" sync_secret="$SECRET" >/dev/null
	nomad var put "nomad/jobs/qmq-backup-$GROUP2" admin_token="$TOKEN" sync_secret="$SECRET2" >/dev/null
	nomad var put nomad/jobs/qmq-console admin_token="$TOKEN" >/dev/null
fi
# Every job on one machine: small reservations with --bundle, or Nomad could not place them all.
SMALL=()
$BUNDLE && SMALL=(-var cpu=200 -var memory=256)

say "nomad job run jobs/qmq-metaserver.nomad.hcl (raw_exec)"
nomad job run -detach "${SMALL[@]}" -var qmq_binary="$QMQ" -var driver=raw_exec -var store_root="$DEMO/volumes/meta" \
	-var http_port="$META_HTTP" -var tcp_port="$META_TCP" -var consul_address="$CONSUL_HTTP_ADDR" \
	jobs/qmq-metaserver.nomad.hcl >/dev/null
until_ok 90 "qmq-metaserver passing in consul" sh -c "curl -sf '$CONSUL_HTTP_ADDR/v1/health/service/qmq-metaserver?passing' | grep -q ServiceID"

say "nomad job run jobs/qmq-broker.nomad.hcl (group $GROUP: a and b on this machine)"
nomad job run -detach "${SMALL[@]}" -var qmq_binary="$QMQ" -var driver=raw_exec -var broker_group="$GROUP" -var distinct_hosts=false \
	-var store_root_a="$DEMO/volumes/a" -var store_root_b="$DEMO/volumes/b" \
	-var broker_port_a="$A_PORT" -var sync_port_a="$A_SYNC" -var http_port_a="$A_HTTP" \
	-var broker_port_b="$B_PORT" -var sync_port_b="$B_SYNC" -var http_port_b="$B_HTTP" \
	-var consul_address="$CONSUL_HTTP_ADDR" -var meta_endpoint="$META" \
	jobs/qmq-broker.nomad.hcl >/dev/null
until_ok 120 "broker a master online with broker b caught up" sh -c \
	"curl -sf 127.0.0.1:$A_HTTP/health | grep -q '\"role\":\"MASTER\",\"online\":true.*\"slaveLagBytes\":0' && curl -sf 127.0.0.1:$B_HTTP/health | grep -q '\"role\":\"SLAVE\",\"online\":true'"
if $BUNDLE; then
	# The rest of the bundle: the jobs wait (prestart AddBroker, restarts) for what they need,
	# so they may all be submitted at once.
	say "nomad job run: broker pair $GROUP2, delay pair $DGROUP, a backup per group, two watchdogs, the console"
	nomad job run -detach "${SMALL[@]}" -var qmq_binary="$QMQ" -var driver=raw_exec -var broker_group="$GROUP2" -var distinct_hosts=false \
		-var volume_a=qmq-broker-c -var volume_b=qmq-broker-d -var store_root_a="$DEMO/volumes/c" -var store_root_b="$DEMO/volumes/d" \
		-var broker_port_a="$C_PORT" -var sync_port_a="$C_SYNC" -var http_port_a="$C_HTTP" \
		-var broker_port_b="$D_PORT" -var sync_port_b="$D_SYNC" -var http_port_b="$D_HTTP" \
		-var consul_address="$CONSUL_HTTP_ADDR" -var meta_endpoint="$META" \
		jobs/qmq-broker.nomad.hcl >/dev/null
	nomad job run -detach "${SMALL[@]}" -var qmq_binary="$QMQ" -var driver=raw_exec -var delay_group="$DGROUP" -var with_slave=true -var distinct_hosts=false \
		-var volume_a=qmq-delay-a -var volume_b=qmq-delay-b -var store_root_a="$DEMO/volumes/delay-a" -var store_root_b="$DEMO/volumes/delay-b" \
		-var broker_port_a="$DA_PORT" -var sync_port_a="$DA_SYNC" -var http_port_a="$DA_HTTP" \
		-var broker_port_b="$DB_PORT" -var sync_port_b="$DB_SYNC" -var http_port_b="$DB_HTTP" \
		-var consul_address="$CONSUL_HTTP_ADDR" -var meta_endpoint="$META" \
		jobs/qmq-delay.nomad.hcl >/dev/null
	for b in "$GROUP:backup1:$BK1_HTTP" "$GROUP2:backup2:$BK2_HTTP"; do
		IFS=: read -r g v port <<<"$b"
		nomad job run -detach -var cpu=100 -var memory=256 -var qmq_binary="$QMQ" -var driver=raw_exec -var broker_group="$g" \
			-var volume="qmq-$v" -var store_root="$DEMO/volumes/$v" -var http_port="$port" \
			-var consul_address="$CONSUL_HTTP_ADDR" -var meta_endpoint="$META" \
			jobs/qmq-backup.nomad.hcl >/dev/null
	done
	# With the metaserver's SQLite store the watchdogs read its file (its host volume).
	nomad job run -detach -var cpu=100 -var memory=128 -var qmq_binary="$QMQ" -var driver=raw_exec \
		-var store_root="$DEMO/volumes/meta" -var consul_address="$CONSUL_HTTP_ADDR" -var meta_endpoint="$META" \
		jobs/qmq-watchdog.nomad.hcl >/dev/null
	# The console finds the metaserver, the backups and the watchdogs in Consul; the servers'
	# HTTP ports (lag, backlog) are given, since their registrations carry only the serve port.
	PORTS="{"
	for m in "$A_PORT=$A_HTTP" "$B_PORT=$B_HTTP" "$C_PORT=$C_HTTP" "$D_PORT=$D_HTTP" "$DA_PORT=$DA_HTTP" "$DB_PORT=$DB_HTTP"; do
		PORTS+="\"127.0.0.1:${m%%=*}\" = \"${m#*=}\", "
	done
	PORTS="${PORTS%, }}"
	nomad job run -detach -var qmq_binary="$QMQ" -var driver=raw_exec -var http_port="$CONSOLE_HTTP" \
		-var consul_address="$CONSUL_HTTP_ADDR" -var broker_http_ports="$PORTS" \
		jobs/qmq-console.nomad.hcl >/dev/null
	until_ok 120 "broker pair $GROUP2 up" sh -c \
		"curl -sf 127.0.0.1:$C_HTTP/health | grep -q '\"role\":\"MASTER\",\"online\":true.*\"slaveLagBytes\":0' && curl -sf 127.0.0.1:$D_HTTP/health | grep -q '\"role\":\"SLAVE\",\"online\":true'"
	until_ok 120 "the delay pair up" sh -c \
		"curl -sf 127.0.0.1:$DA_HTTP/health | grep -q '\"role\":\"DELAY_MASTER\"' && curl -sf 127.0.0.1:$DB_HTTP/health | grep -q '\"role\":\"DELAY_SLAVE\"'"
	for svc in qmq-metaserver:1 qmq-broker:4 qmq-delay:1 qmq-backup:2 qmq-watchdog:2 qmq-console:1; do
		until_ok 120 "${svc#*:} ${svc%:*} passing in consul" sh -c \
			"[ \$(curl -sf '$CONSUL_HTTP_ADDR/v1/health/service/${svc%:*}?passing' | grep -o '\"ServiceID\"' | wc -l) -ge ${svc#*:} ]"
	done
	say "READY: the whole bundle up, every service passing in Consul, $(elapsed)s after start"
else
	say "READY: metaserver and broker pair up, $(elapsed)s after start"
fi

cat <<EOF

From another terminal (in $ROOT):
  export CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR NOMAD_ADDR=$NOMAD_ADDR
  bin/qmq consume --meta '$META' --subject hello --group g1
  bin/qmq send --meta '$META' --subject hello --body hi
  bin/qmq tools ListBrokers --metaserver='$META'
  curl 127.0.0.1:$A_HTTP/health; curl 127.0.0.1:$B_HTTP/health   # brokers a and b
  nomad job status qmq-broker-$GROUP   # or $NOMAD_ADDR/ui
  admin token: $TOKEN
EOF
if $BUNDLE; then
	cat <<EOF
  bin/qmq send --meta '$META' --subject hello --body later --delay 5s   # through the delay pair
  console:    http://127.0.0.1:$CONSOLE_HTTP/ (log in with the admin token)
  backups:    curl -G 127.0.0.1:$BK1_HTTP/api/message --data-urlencode 'backupQuery={"subject":"hello","len":20}'   # $GROUP
              curl -G 127.0.0.1:$BK2_HTTP/api/message --data-urlencode 'backupQuery={"subject":"hello","len":20}'   # $GROUP2
  metaserver: http://127.0.0.1:$META_HTTP/meta/address   Consul: http://$CONSUL_HTTP_ADDR/ui/dc1/services
  delay pair: curl 127.0.0.1:$DA_HTTP/health; curl 127.0.0.1:$DB_HTTP/health
  watchdogs:  bin/qmq tools AddDb --metaserver='$META' --token=$TOKEN --host=127.0.0.1 --port=3306 --username=root --password=
EOF
fi
echo "Ctrl-C here stops the jobs and both agents."

if $CHECK; then
	"$QMQ" consume --meta "$META" --subject demo.check --group g1 --count 1 >"$DEMO/consumed.txt" 2>"$DEMO/consume.log" &
	CONSUMER=$!
	sleep 2 # a new consumer group starts at the next message
	"$QMQ" send --meta "$META" --subject demo.check --body "through nomad" >/dev/null
	for _ in $(seq 60); do kill -0 "$CONSUMER" 2>/dev/null || break; sleep 0.5; done
	if kill -0 "$CONSUMER" 2>/dev/null; then
		kill "$CONSUMER"
		fail "the message sent was not consumed within 30s (see $DEMO/consume.log)"
	fi
	wait "$CONSUMER" || true
	grep -q "through nomad" "$DEMO/consumed.txt" || fail "consumed something else: $(cat "$DEMO/consumed.txt")"
	say "CHECK OK: sent and consumed one message through consul://qmq-metaserver"
	if $BUNDLE; then
		"$QMQ" consume --meta "$META" --subject demo.later --group g1 --count 1 >"$DEMO/consumed-later.txt" 2>"$DEMO/consume-later.log" &
		CONSUMER=$!
		sleep 2
		"$QMQ" send --meta "$META" --subject demo.later --body "two seconds later" --delay 2s >/dev/null
		for _ in $(seq 60); do kill -0 "$CONSUMER" 2>/dev/null || break; sleep 0.5; done
		if kill -0 "$CONSUMER" 2>/dev/null; then
			kill "$CONSUMER"
			fail "the delayed message was not consumed within 30s (see $DEMO/consume-later.log)"
		fi
		wait "$CONSUMER" || true
		grep -q "two seconds later" "$DEMO/consumed-later.txt" || fail "consumed something else: $(cat "$DEMO/consumed-later.txt")"
		say "CHECK OK: a delayed message through the delay pair"
		in_backup() {
			for port in $BK1_HTTP $BK2_HTTP; do
				curl -sfG "127.0.0.1:$port/api/message" --data-urlencode 'backupQuery={"subject":"demo.check","len":20}' | grep -q messageId && return 0
			done
			return 1
		}
		until_ok 60 "the message in a backup" in_backup
		say "CHECK OK: the message listed by a backup"
		until_ok 30 "the console's cluster page" sh -c "curl -sf -H 'X-Api-Token: $TOKEN' 127.0.0.1:$CONSOLE_HTTP/cluster | grep -q $DGROUP"
		say "CHECK OK: the console shows the cluster"
	fi
	exit 0
fi

# Until Ctrl-C, or until an agent dies.
while kill -0 "$CONSUL_PID" 2>/dev/null && kill -0 "$NOMAD_PID" 2>/dev/null; do sleep 1; done
fail "an agent exited; see $DEMO/consul.log and $DEMO/nomad.log"
