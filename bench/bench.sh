#!/usr/bin/env bash
# Gatehouse's load benchmark (docs/performance.md). Not part of `go test`.
#
#   ./bench/bench.sh        (or: bin/task bench)
#
# Builds web, floor and loadgen; starts Gatehouse on a fresh database (made
# from `postgres`, dropped at the end) and its own Redis prefix (deleted at
# the end), and F1 (bench/floor) beside it; seeds; runs every target; prints
# one table. Servers run on CPU 0, load generators on CPU 1 (taskset).
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_ROUNDS
# (5: target 1 runs Gatehouse and F1 alternately this many times, medians
# reported), BENCH_CONNS (16), BENCH_BIG_USERS (100000), BENCH_BIG_SESSIONS
# (1000000), BENCH_STORM (200 concurrent sign-ins), BENCH_PORT (18080: it
# and the next two), BENCH_ADMIN_URL (the postgres database to create from),
# BENCH_REDIS: "private" (the default) runs a redis-server of the benchmark's
# own, with the default settings, on port BENCH_PORT+9; "shared" uses
# REDIS_URL (redis://127.0.0.1:6379/0) under a prefix of its own. Private,
# because a million sessions make every SCAN that others run on a shared
# Redis (test clean-ups do) a hundred times longer, and those SCANs then
# show up in these figures.
#
# Issue 14's targets, printed as a second table from the same run:
# Gatehouse (idle timeout on) against F0, bench/floor WITHOUT an idle
# timeout (one GET per request), in the same alternating rounds; the same
# Gatehouse against a private 3-primary Redis Cluster (ports BENCH_PORT+10
# to +12; BENCH_CLUSTER=0 skips it) next to the single Redis; and 1M
# against 1k sessions. Beside F0 runs F0P, "F0 at Gatehouse's size": the
# same floor padded to send as many header and body bytes as Gatehouse's
# /account does, which parts the gap to F0 into what the page's size costs
# and what the app does.
# BENCH_PROFILE=1 also takes a CPU profile of Gatehouse (PPROF_ADDR) during
# an extra /account run and prints its top functions.
# BENCH_QUICK=1: a check that the harness works, in a couple of minutes
# (3 s runs, one round, 20,000 sessions for "1M", no go test parts); its
# figures are not results.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	: "${BENCH_DURATION:=3s}" "${BENCH_WARMUP:=1s}" "${BENCH_ROUNDS:=1}"
	: "${BENCH_BIG_USERS:=2000}" "${BENCH_BIG_SESSIONS:=20000}" "${BENCH_STORM:=20}"
fi
DUR=${BENCH_DURATION:-10s}
WARM=${BENCH_WARMUP:-2s}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-16}
BIG_USERS=${BENCH_BIG_USERS:-100000}
BIG_SESSIONS=${BENCH_BIG_SESSIONS:-1000000}
STORM=${BENCH_STORM:-200}
CLUSTER=${BENCH_CLUSTER:-1}
PROFILE=${BENCH_PROFILE:-0}
PORT=${BENCH_PORT:-18080}
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
REDIS_MODE=${BENCH_REDIS:-private}

RUN=bench_$(date +%s)_$$
DB=gatehouse_$RUN
PREFIX=$RUN:
GH=127.0.0.1:$PORT
F1=127.0.0.1:$((PORT + 1))
GHLOG=127.0.0.1:$((PORT + 2))
F0=127.0.0.1:$((PORT + 3))
GHC=127.0.0.1:$((PORT + 4))
PPROF=127.0.0.1:$((PORT + 5))
F0P=127.0.0.1:$((PORT + 6))
CLUSTER_PORTS=($((PORT + 10)) $((PORT + 11)) $((PORT + 12)))
WORK=$(mktemp -d)
RES=$WORK/results
DB_URL=$(echo "$ADMIN_URL" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
REDIS_HOST=$(echo "$REDIS_URL" | sed -E 's#^redis://([^:/]+).*#\1#')
REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's#^redis://[^:/]+:?([0-9]*).*#\1#')
REDIS_PORT=${REDIS_PORT:-6379}
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
say() { printf '\n== %s\n' "$*" >&2; }

PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
	if [ "$REDIS_MODE" = shared ]; then
		rcli --scan --pattern "$PREFIX*" | xargs -r -n 1000 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" UNLINK >/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

for port in $PORT $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) $((PORT + 4)) $((PORT + 5)) $((PORT + 6)) $((PORT + 9)) "${CLUSTER_PORTS[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "bench: port $port is taken (set BENCH_PORT)" >&2
		exit 1
	fi
done

if [ "$REDIS_MODE" = private ]; then
	say "starting a private redis-server on port $((PORT + 9))"
	redis-server --port $((PORT + 9)) --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
	PIDS+=("$!")
	REDIS_URL=redis://127.0.0.1:$((PORT + 9))/0 REDIS_HOST=127.0.0.1 REDIS_PORT=$((PORT + 9))
	for _ in $(seq 50); do rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ "$CLUSTER" = 1 ]; then
	say "starting a private 3-primary Redis Cluster on ports ${CLUSTER_PORTS[*]}"
	CLUSTER_ADDRS=
	for p in "${CLUSTER_PORTS[@]}"; do
		mkdir -p "$WORK/cluster-$p"
		redis-server --port "$p" --bind 127.0.0.1 --dir "$WORK/cluster-$p" --cluster-enabled yes \
			--cluster-config-file "nodes-$p.conf" --save "" --appendonly no >"$WORK/cluster-$p.log" 2>&1 &
		PIDS+=("$!")
		CLUSTER_ADDRS=${CLUSTER_ADDRS:+$CLUSTER_ADDRS,}127.0.0.1:$p
	done
	for p in "${CLUSTER_PORTS[@]}"; do
		for _ in $(seq 50); do redis-cli -p "$p" PING >/dev/null 2>&1 && break; sleep 0.1; done
	done
	redis-cli --cluster create ${CLUSTER_ADDRS//,/ } --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log" 2>&1
	for p in "${CLUSTER_PORTS[@]}"; do
		for _ in $(seq 100); do redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok && break; sleep 0.1; done
	done
fi

say "building"
go build -o "$WORK/" ./cmd/web ./bench/floor ./bench/loadgen
psql -q "$ADMIN_URL" -c "CREATE DATABASE \"$DB\"" >/dev/null

export DATABASE_URL=$DB_URL REDIS_URL REDIS_PREFIX=$PREFIX MIGRATE_ON_START=true
say "seeding 1,000 sessions: 10 users with 100 each"
"$WORK/web" migrate 2>/dev/null
"$WORK/web" seed -users 10 -sessions 1000 -email-prefix small -tokens "$WORK/small.tokens"
# Sign-in storm accounts, without sessions (target 6).
"$WORK/web" seed -users "$STORM" -sessions 0 -email-prefix storm >/dev/null

if [ "$CLUSTER" = 1 ]; then
	say "seeding 1,000 sessions in the Cluster: 10 users with 100 each"
	# Exactly one of REDIS_URL, REDIS_SENTINEL_ADDRS, REDIS_CLUSTER_ADDRS.
	env -u REDIS_URL REDIS_CLUSTER_ADDRS="$CLUSTER_ADDRS" "$WORK/web" seed -users 10 -sessions 1000 \
		-email-prefix cluster -tokens "$WORK/cluster.tokens"
fi

say "starting Gatehouse on $GH, F1 on $F1 and F0 (no idle timeout) on $F0 (CPU 0)"
# The load generator stands for many clients from one address: the cap on
# password work per address (meant for one client) is off. The sign-in
# storm (target 6) says it comes from 200 addresses (X-Forwarded-For,
# trusted from loopback): from one, the sign-in throttle turns away all
# but its first attempts in flight (429), as it should an attacker. With
# BENCH_PROFILE, it serves profiles on PPROF_ADDR (nothing is taken until
# the profile run asks).
pprof_env=()
[ "$PROFILE" = 1 ] && pprof_env=(PPROF_ADDR="$PPROF")
env "${pprof_env[@]}" ADDR=$GH LOG_LEVEL=warn PASSWORD_CONCURRENCY_PER_IP=0 TRUST_PROXY=true taskset -c 0 "$WORK/web" >"$WORK/web.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
# The same, logging every request (LOG_LEVEL=info) to a file: what that costs.
ADDR=$GHLOG LOG_LEVEL=info MIGRATE_ON_START=false taskset -c 0 "$WORK/web" >"$WORK/web-info.log" 2>&1 &
GHLOG_PID=$!
PIDS+=("$GHLOG_PID")
taskset -c 0 "$WORK/floor" -addr "$F1" -redis "$REDIS_URL" -prefix "${PREFIX}floor:" \
	-seed 1000 -tokens "$WORK/floor.tokens" >"$WORK/floor.log" 2>&1 &
F1_PID=$!
PIDS+=("$F1_PID")
# F0: issue 14's floor, scs and its Redis store with no idle timeout, so a
# request that changes nothing costs one GET.
taskset -c 0 "$WORK/floor" -addr "$F0" -redis "$REDIS_URL" -prefix "${PREFIX}floor0:" -idle 0 \
	-seed 1000 -tokens "$WORK/floor0.tokens" >"$WORK/floor0.log" 2>&1 &
F0_PID=$!
PIDS+=("$F0_PID")
GHC_PID=
if [ "$CLUSTER" = 1 ]; then
	env -u REDIS_URL REDIS_CLUSTER_ADDRS="$CLUSTER_ADDRS" ADDR=$GHC LOG_LEVEL=warn MIGRATE_ON_START=false \
		PASSWORD_CONCURRENCY_PER_IP=0 taskset -c 0 "$WORK/web" >"$WORK/web-cluster.log" 2>&1 &
	GHC_PID=$!
	PIDS+=("$GHC_PID")
fi
for _ in $(seq 300); do
	if curl -sf "http://$GH/healthz" >/dev/null && curl -sf "http://$GHLOG/healthz" >/dev/null &&
		curl -sf "http://$F1/hello" >/dev/null && curl -sf "http://$F0/hello" >/dev/null &&
		{ [ -z "$GHC_PID" ] || curl -sf "http://$GHC/healthz" >/dev/null; }; then break; fi
	sleep 0.1
done
# F0P: F0 padded to the size of Gatehouse's answer to GET /account, as
# loadgen gets it: the second answer, to a client that sends back the CSRF
# cookie the first one set.
session="gatehouse_session=$(head -1 "$WORK/small.tokens")"
csrf=$(curl -sf -o /dev/null -D - -b "$session" "http://$GH/account" | tr -d '\r' |
	sed -n 's/^Set-Cookie: gatehouse_csrf=\([^;]*\).*/\1/p')
read -r gh_hdr gh_body < <(curl -sf -o /dev/null -w '%{size_header} %{size_download}\n' \
	-b "$session; gatehouse_csrf=$csrf" "http://$GH/account")
[ "${gh_body:-0}" -gt 1000 ] || { echo "bench: GET /account gave no page (${gh_body:-none} bytes)" >&2; exit 1; }
taskset -c 0 "$WORK/floor" -addr "$F0P" -redis "$REDIS_URL" -prefix "${PREFIX}floor0p:" -idle 0 \
	-header-bytes "$gh_hdr" -body-bytes "$gh_body" -seed 1000 -tokens "$WORK/floor0p.tokens" >"$WORK/floor0p.log" 2>&1 &
F0P_PID=$!
PIDS+=("$F0P_PID")
for _ in $(seq 300); do curl -sf "http://$F0P/hello" >/dev/null && break; sleep 0.1; done
read -r f0p_hdr f0p_body < <(curl -sf -o /dev/null -w '%{size_header} %{size_download}\n' \
	-b "session=$(head -1 "$WORK/floor0p.tokens")" "http://$F0P/account")
say "GET /account answers: Gatehouse $gh_hdr + $gh_body bytes, F0P $f0p_hdr + $f0p_body (headers + body)"
REDIS_PID=$(rcli INFO server | awk -F: '/^process_id/ { print $2 }' | tr -d '\r')

# Access tokens for the bearer row (issue 15): an app session for each of
# the first 20 storm users, through the password grant. Storm users have no
# sessions yet, so the session cap ends none of the seeded ones.
say "app sessions for the bearer row: the password grant for $((STORM < 20 ? STORM : 20)) users"
: >"$WORK/bearer.tokens"
for i in $(seq $((STORM < 20 ? STORM : 20))); do
	curl -sf "http://$GH/api/v1/token" -d grant_type=password -d "email=storm$i%40example.test" \
		--data-urlencode 'password=seed password' -d client_name=bench |
		sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' >>"$WORK/bearer.tokens"
done
[ -s "$WORK/bearer.tokens" ] || { echo "bench: the password grant gave no access token" >&2; exit 1; }

# load LABEL [loadgen flags...]: one measured run on CPU 1.
load() {
	local label=$1
	shift
	taskset -c 1 "$WORK/loadgen" -d "$DUR" -warmup "$WARM" -label "$label" -out "$RES" "$@" >&2
}
gh_account() { load "$1" -url "http://$GH/account" -tokens "$2" -c "$CONNS" -pids "$GH_PID,$REDIS_PID,all"; }
f1_account() { load "$1" -url "http://$F1/account" -tokens "$WORK/floor.tokens" -cookie session -c "$CONNS" -pids "$F1_PID,$REDIS_PID,all"; }
f0_account() { load "$1" -url "http://$F0/account" -tokens "$WORK/floor0.tokens" -cookie session -c "$CONNS" -pids "$F0_PID,$REDIS_PID,all"; }
f0p_account() { load "$1" -url "http://$F0P/account" -tokens "$WORK/floor0p.tokens" -cookie session -c "$CONNS" -pids "$F0P_PID,$REDIS_PID,all"; }
ghc_account() { load "$1" -url "http://$GHC/account" -tokens "$WORK/cluster.tokens" -c "$CONNS" -pids "$GHC_PID,all"; }
ghb_account() { load "$1" -url "http://$GH/account" -tokens "$WORK/bearer.tokens" -bearer -c "$CONNS" -pids "$GH_PID,$REDIS_PID,all"; }
devices() { load "$1" -url "http://$GH/account/sessions" -tokens "$WORK/small.tokens" -c 1 -pids "$GH_PID,$REDIS_PID,all"; }

# Target 1 and its floor, alternately, ROUNDS times; then the Devices page.
# At 1k also Gatehouse logging every request; at 1M also Gatehouse cycling
# through every session (cold: each request a session not used for minutes).
stage() {
	local stage=$1 tokens=$2
	for r in $(seq "$ROUNDS"); do
		say "$stage round $r/$ROUNDS: Gatehouse GET /account, (1k) the same with bearer tokens, F1 and F0 GET /account, F2 GET /hello, (1k) Gatehouse on the Cluster and logging requests or (1M) cold sessions"
		gh_account "gh.$stage.$r" "$tokens"
		f1_account "f1.$stage.$r"
		f0_account "f0.$stage.$r"
		if [ "$stage" = 1k ]; then
			f0p_account "f0p.$stage.$r"
			ghb_account "ghb.$stage.$r"
		fi
		if [ "$stage" = 1k ] && [ -n "$GHC_PID" ]; then
			ghc_account "ghc.$stage.$r"
		fi
		load "hello.$stage.$r" -url "http://$F1/hello" -c "$CONNS" -pids "$F1_PID"
		if [ "$stage" = 1k ]; then
			load "ghlog.$stage.$r" -url "http://$GHLOG/account" -tokens "$tokens" -c "$CONNS" -pids "$GHLOG_PID,$REDIS_PID"
		else
			gh_account "ghcold.$stage.$r" "$WORK/big.tokens"
		fi
	done
	say "$stage: Devices page with 100 sessions, one request at a time"
	devices "dev.$stage"
}

stage 1k "$WORK/small.tokens"

# The profile: one more 1k run of Gatehouse GET /account, not counted in
# any figure, while pprof samples its CPU for the run's length.
if [ "$PROFILE" = 1 ]; then
	secs=$(awk -v d="$DUR" 'BEGIN { sub(/s$/, "", d); printf "%d", d + 0.5 }')
	say "profile: Gatehouse GET /account for $DUR, CPU profile of the app meanwhile"
	(sleep "$(awk -v w="$WARM" 'BEGIN { sub(/s$/, "", w); print w + 0 }')" &&
		curl -sf -o "$WORK/cpu.pprof" "http://$PPROF/debug/pprof/profile?seconds=$secs") &
	PROF_PID=$!
	gh_account "profile" "$WORK/small.tokens"
	wait "$PROF_PID" || echo "bench: the profile could not be taken" >&2
fi

say "F2: redis-benchmark -t get (CPU 1)"
taskset -c 1 redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -t get -n 300000 -c "$CONNS" -q 2>/dev/null |
	tr '\r' '\n' | grep -a 'requests per second' | tail -1 | tee "$WORK/redis-benchmark" >&2

say "seeding up to $BIG_SESSIONS sessions over $BIG_USERS users"
mem0=$(rcli INFO memory | awk -F: '/^used_memory:/ { print $2 }' | tr -d '\r')
big_sessions=$((BIG_SESSIONS - 1000))
"$WORK/web" seed -users $((BIG_USERS - 10)) -sessions "$big_sessions" -email-prefix big -tokens "$WORK/big.tokens"
mem1=$(rcli INFO memory | awk -F: '/^used_memory:/ { print $2 }' | tr -d '\r')
read -r pg_bytes pg_rows < <(psql -qAt -F ' ' "$DB_URL" -c \
	"SELECT pg_total_relation_size('sessions'), count(*) FROM sessions")

# The same traffic as the 1k stage (1,000 sessions, each used again every
# few seconds) against a store a thousand times larger: 1,000 sessions drawn
# at random from the million, so spread over the whole keyspace and table.
shuf -n 1000 "$WORK/big.tokens" >"$WORK/big.sample.tokens"
stage 1m "$WORK/big.sample.tokens"
touched=$(psql -qAt "$DB_URL" -c "SELECT count(*) FROM sessions WHERE last_seen_at > created_at")

say "target 6: $STORM concurrent sign-ins, and GET /account (4 connections) meanwhile"
hwm_before=$(awk '/^VmHWM/ { print $2 }' "/proc/$GH_PID/status")
taskset -c 1 "$WORK/loadgen" -url "http://$GH/signin" -method POST -c "$STORM" -d "$DUR" -warmup "$WARM" \
	-body 'email=storm{i}%40example.test&password=seed+password' -i "$STORM" \
	-H 'Sec-Fetch-Site: same-origin' -H 'X-Forwarded-For: 10.0.0.{i}' -expect 303 -label storm -out "$RES" -pids "$GH_PID" >&2 &
STORM_PID=$!
rss_peak=0
(sleep 1 && load storm.account -url "http://$GH/account" -tokens "$WORK/big.tokens" -c 4) &
PROBE_PID=$!
while kill -0 "$STORM_PID" 2>/dev/null; do
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$GH_PID/status")
	((rss > rss_peak)) && rss_peak=$rss
	sleep 0.2
done
wait "$STORM_PID" "$PROBE_PID"
hwm_after=$(awk '/^VmHWM/ { print $2 }' "/proc/$GH_PID/status")

if [ "$QUICK" = 1 ]; then
	say "quick: targets 4 and 2 (go test) skipped"
	: >"$WORK/revoke"
	cost=skipped
else
	say "target 4: BenchmarkAdminRevokeAll (go test)"
	go test -run '^$' -bench 'AdminRevokeAll$' -benchtime 200x ./internal/handlers/ | tee "$WORK/revoke" >&2
	say "target 2: TestHotPathCost"
	if go test -count=1 -run '^TestHotPathCost$' ./internal/session/ >&2; then cost=pass; else cost=FAIL; fi
fi

# ---- the table ----
field() { # field LABEL KEY: KEY of the run LABEL
	awk -v l="label=$1" -v k="$2=" '$1 == l { for (i = 2; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' "$RES"
}
median() { # median of KEY over runs PREFIX.1..N
	awk -v l="label=$1." -v k="$2=" 'index($1, l) == 1 { for (i = 2; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$RES" |
		sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
sumbad() { awk -v l="label=$1." 'index($1, l) == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^(bad|errors)=/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }' "$RES"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**not met**"; fi; }
# The go test rows, which BENCH_QUICK leaves out.
tverdict() { if [ "$QUICK" = 1 ]; then echo skipped; else verdict "$1"; fi; }

rps_gh1=$(median gh.1k rps) rps_f11=$(median f1.1k rps) p99_gh1=$(median gh.1k p99) p99_f11=$(median f1.1k p99)
rps_gh2=$(median gh.1m rps) rps_f12=$(median f1.1m rps) p99_gh2=$(median gh.1m p99) p99_f12=$(median f1.1m p99)
p50_gh1=$(median gh.1k p50) p50_gh2=$(median gh.1m p50)
cpu() { # cpu LABEL N: median over rounds of the Nth -pids figure (1 server, 2 Redis, 3 machine)
	awk -v l="label=$1." -v n="$2" 'index($1, l) == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^cpu_us=/) { split(substr($i, 8), c, ","); print c[n] } }' "$RES" |
		sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
cpu_gh1=$(cpu gh.1k 1) cpu_f11=$(cpu f1.1k 1) cpu_gh2=$(cpu gh.1m 1) cpu_f12=$(cpu f1.1m 1)
all_gh1=$(cpu gh.1k 3) all_f11=$(cpu f1.1k 3) all_gh2=$(cpu gh.1m 3) all_f12=$(cpu f1.1m 3)
red_gh1=$(cpu gh.1k 2) red_f11=$(cpu f1.1k 2) red_gh2=$(cpu gh.1m 2)
hello1=$(median hello.1k rps) hello2=$(median hello.1m rps) rps_cold=$(median ghcold.1m rps)
bad_gh=$(($(sumbad gh.1k) + $(sumbad gh.1m) + $(sumbad ghcold.1m) + $(sumbad ghb.1k)))
rps_ghb=$(median ghb.1k rps) p99_ghb=$(median ghb.1k p99) cpu_ghb=$(cpu ghb.1k 1)
dev1=$(field dev.1k p50) dev2=$(field dev.1m p50) dev1_99=$(field dev.1k p99) dev2_99=$(field dev.1m p99)
dev_bad=$(($(field dev.1k bad) + $(field dev.1k errors) + $(field dev.1m bad) + $(field dev.1m errors)))
revoke() { awk -v b="BenchmarkAdminRevokeAll/$1" 'index($1, b) == 1 { for (i = 1; i <= NF; i++) if ($(i + 1) == "p50-ms") print $i }' "$WORK/revoke"; }
revoke_p50=$(revoke http) revoke_store=$(revoke store-) revoke_rec=$(revoke store+record) revoke_pg=$(revoke postgres)
redis_get=$(awk '{ print $2 }' "$WORK/redis-benchmark")
r1=$(calc %.2f "$rps_gh1 / $rps_f11") q1=$(calc %.2f "$p99_gh1 / $p99_f11")
r2=$(calc %.2f "$rps_gh2 / $rps_f12") q2=$(calc %.2f "$p99_gh2 / $p99_f12")
flat_rps=$(calc %.2f "$rps_gh2 / $rps_gh1") flat_p50=$(calc %.2f "$p50_gh2 / $p50_gh1") flat_dev=$(calc %.2f "$dev2 / $dev1")
flat_norm=$(calc %.2f "($rps_gh2 / $rps_f12) / ($rps_gh1 / $rps_f11)")
redis_per=$(calc %.0f "($mem1 - $mem0) / $big_sessions")
pg_per=$(calc %.0f "$pg_bytes / $pg_rows")
storm_ok=$(field storm statuses)
storm_p99=$(field storm.account p99) storm_bad=$(($(field storm.account bad) + $(field storm.account errors)))

cat <<EOF

### Results ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -m), $REDIS_MODE Redis; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))

Each load run: ${DUR} after ${WARM} warm-up, closed loop; target 1 with $CONNS connections, medians of $ROUNDS alternating rounds.

| # | target | Gatehouse | floor | ratio / figure | goal | |
| --- | --- | --- | --- | --- | --- | --- |
| 1 | GET /account, 1k sessions: req/s | $rps_gh1 | F1 $rps_f11 | $r1 | ≥ 0.8 | $(verdict "$r1 >= 0.8") |
| 1 | GET /account, 1k sessions: p99 ms | $p99_gh1 | F1 $p99_f11 | $q1 | ≤ 1.5 | $(verdict "$q1 <= 1.5") |
| 1 | GET /account, 1M sessions: req/s | $rps_gh2 | F1 $rps_f12 | $r2 | ≥ 0.8 | $(verdict "$r2 >= 0.8") |
| 1 | GET /account, 1M sessions: p99 ms | $p99_gh2 | F1 $p99_f12 | $q2 | ≤ 1.5 | $(verdict "$q2 <= 1.5") |
| 1 | non-2xx or failed, all /account runs | $bad_gh | | | 0 | $(verdict "$bad_gh == 0") |
| 1 | CPU µs per request, 1k: server / Redis / whole machine | $cpu_gh1 / $red_gh1 / $all_gh1 | F1 $cpu_f11 / $red_f11 / $all_f11 | $(calc %.2f "$all_gh1 / $all_f11") (machine) | | |
| 1 | CPU µs per request, 1M: server / Redis / whole machine | $cpu_gh2 / $red_gh2 / $all_gh2 | F1 $cpu_f12 / – / $all_f12 | $(calc %.2f "$all_gh2 / $all_f12") (machine) | | |
| 15 | GET /account with an app's bearer token ÷ with the cookie, 1k: req/s (p99 ms; server CPU µs/req) | $rps_ghb ($p99_ghb; $cpu_ghb) | cookie $rps_gh1 ($p99_gh1; $cpu_gh1) | $(calc %.2f "$rps_ghb / $rps_gh1") | 0.9–1.1 | $(verdict "$rps_ghb / $rps_gh1 >= 0.9 && $rps_ghb / $rps_gh1 <= 1.1") |
| 1 | … with every request logged (LOG_LEVEL=info, to a file): req/s, p99 ms | $(median ghlog.1k rps), $(median ghlog.1k p99) | F1 $rps_f11, $p99_f11 | $(calc %.2f "$(median ghlog.1k rps) / $rps_f11") | | |
| F2 | hello world req/s (1k, 1M stage) / Redis GET req/s | $hello1, $hello2 | $redis_get | | | |
| 2 | Redis commands / SQL per /account (TestHotPathCost) | 1 / 0 | | $cost | 1 / 0 | $(tverdict "\"$cost\" == \"pass\"") |
| 3 | /account/sessions, 100 sessions, 1k: p50 (p99) ms | $dev1 ($dev1_99) | | | < 5 | $(verdict "$dev1 < 5") |
| 3 | /account/sessions, 100 sessions, 1M: p50 (p99) ms | $dev2 ($dev2_99) | | | < 5 | $(verdict "$dev2 < 5 && $dev_bad == 0") |
| 4 | revoke-all of 1,000 sessions, the admin's POST end to end: p50 ms | $revoke_p50 | | | < 10 | $(tverdict "$revoke_p50 < 10") |
| 4 | … the revoke in Redis / until the records are written / their UPDATE alone: p50 ms | $revoke_store / $revoke_rec / $revoke_pg | | | | |
| 5 | 1M/1k: /account req/s (÷ F1's own 1M/1k) | | | $flat_rps ($flat_norm) | within 10% | $(verdict "$flat_rps >= 0.9 && $flat_rps <= 1.1") |
| 5 | 1M/1k: /account p50 | $p50_gh1 → $p50_gh2 ms | | $flat_p50 | within 10% | $(verdict "$flat_p50 >= 0.9 && $flat_p50 <= 1.1") |
| 5 | 1M/1k: /account/sessions p50 | $dev1 → $dev2 ms | | $flat_dev | within 10% | $(verdict "$flat_dev >= 0.9 && $flat_dev <= 1.1") |
| 5 | 1M, cold (every request a session not used for minutes, each due a last-seen write): req/s, ratio to 1k | $rps_cold | | $(calc %.2f "$rps_cold / $rps_gh1") | | |
| 5 | last-seen rows written by then | $touched | | | | |
| 5 | Redis bytes per session (used_memory delta / $big_sessions) | $redis_per | | | record | |
| 5 | Postgres bytes per session record ($pg_rows rows) | $pg_per | | | record | |
| 6 | $STORM concurrent sign-ins: statuses; sign-ins/s | $storm_ok; $(field storm rps) | | | | |
| 6 | peak RSS during the storm (VmHWM before → after) MiB | $(calc %.0f "$rss_peak / 1024") ($(calc %.0f "$hwm_before / 1024") → $(calc %.0f "$hwm_after / 1024")) | | | < 256 | $(verdict "$hwm_after < 262144") |
| 6 | GET /account meanwhile: p99 ms (failures) | $storm_p99 ($storm_bad) | | | < 50 | $(verdict "$storm_p99 < 50 && $storm_bad == 0") |
EOF

# ---- issue 14's targets ----
rps_f01=$(median f0.1k rps) p99_f01=$(median f0.1k p99) rps_f02=$(median f0.1m rps) p99_f02=$(median f0.1m p99)
cpu_f01=$(cpu f0.1k 1) red_f01=$(cpu f0.1k 2)
rps_f0p=$(median f0p.1k rps) p99_f0p=$(median f0p.1k p99) cpu_f0p=$(cpu f0p.1k 1)
t1=$(calc %.2f "$rps_gh1 / $rps_f01") t1q=$(calc %.2f "$p99_gh1 / $p99_f01")
t1m=$(calc %.2f "$rps_gh2 / $rps_f02") t1mq=$(calc %.2f "$p99_gh2 / $p99_f02")
if [ -n "$GHC_PID" ]; then
	rps_ghc=$(median ghc.1k rps) p99_ghc=$(median ghc.1k p99) cpu_ghc=$(cpu ghc.1k 1)
	bad_ghc=$(sumbad ghc.1k)
	t2=$(calc %.2f "$rps_ghc / $rps_gh1")
	t2_row="| Cluster | GET /account on a 3-primary Redis Cluster ÷ single Redis, 1k: req/s (p99 ms; server CPU µs/req; failures) | $rps_ghc ($p99_ghc; $cpu_ghc; $bad_ghc) | single $rps_gh1 ($p99_gh1; $cpu_gh1) | $t2 | ≥ 0.8 | $(verdict "$t2 >= 0.8 && $bad_ghc == 0") |"
else
	t2_row="| Cluster | GET /account on a 3-primary Redis Cluster ÷ single Redis | skipped (BENCH_CLUSTER=0) | | | ≥ 0.8 | |"
fi
note="These are the figures of this run only. Targets count as measured only from a run on a quiet machine (load average below 1 throughout)."
[ "$QUICK" = 1 ] && note="BENCH_QUICK=1: short runs and $BIG_SESSIONS sessions for \"1M\": a check that the harness works, not results. $note"

cat <<EOF2

### Issue 14's targets ($(date -u +%Y-%m-%d), same run; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))

$note
Gatehouse runs with its idle timeout (30 min); F0 is bench/floor with no idle timeout (one Redis GET per request), F1 the same floor with Gatehouse's idle timeout; F0P is F0 padded to send as many header and body bytes as Gatehouse (the F0P rows are not targets: they part the gap to F0).

| target | measure | Gatehouse | reference | ratio | goal | |
| --- | --- | --- | --- | --- | --- | --- |
| F0 | GET /account, 1k sessions: req/s | $rps_gh1 | F0 $rps_f01 | $t1 | ≥ 0.9 | $(verdict "$t1 >= 0.9") |
| F0 | GET /account, 1k sessions: p99 ms | $p99_gh1 | F0 $p99_f01 | $t1q | ≤ 1.2 | $(verdict "$t1q <= 1.2") |
| F0 | GET /account, 1M sessions: req/s | $rps_gh2 | F0 $rps_f02 | $t1m | ≥ 0.9 | $(verdict "$t1m >= 0.9") |
| F0 | GET /account, 1M sessions: p99 ms | $p99_gh2 | F0 $p99_f02 | $t1mq | ≤ 1.2 | $(verdict "$t1mq <= 1.2") |
| F0 | server CPU µs per request, 1k (Redis µs) | $cpu_gh1 ($red_gh1) | F0 $cpu_f01 ($red_f01) | $(calc %.2f "$cpu_gh1 / $cpu_f01") | | |
| F0P | the page's size: F0 at Gatehouse's size ($f0p_hdr + $f0p_body bytes; Gatehouse $gh_hdr + $gh_body) ÷ F0, 1k: req/s (p99 ms; server CPU µs/req) | F0P $rps_f0p ($p99_f0p; $cpu_f0p) | F0 $rps_f01 ($p99_f01; $cpu_f01) | $(calc %.2f "$rps_f0p / $rps_f01") | | |
| F0P | the app: Gatehouse ÷ F0 at its size, 1k: req/s, p99, server CPU | $rps_gh1, $p99_gh1, $cpu_gh1 | F0P $rps_f0p, $p99_f0p, $cpu_f0p | $(calc %.2f "$rps_gh1 / $rps_f0p"), $(calc %.2f "$p99_gh1 / $p99_f0p"), $(calc %.2f "$cpu_gh1 / $cpu_f0p") | | |
$t2_row
| size | GET /account req/s, 1M ÷ 1k sessions | $rps_gh2 | $rps_gh1 | $flat_rps | 0.9–1.1 | $(verdict "$flat_rps >= 0.9 && $flat_rps <= 1.1") |
| size | GET /account p50 ms, 1M ÷ 1k sessions | $p50_gh2 | $p50_gh1 | $flat_p50 | 0.9–1.1 | $(verdict "$flat_p50 >= 0.9 && $flat_p50 <= 1.1") |
EOF2

if [ "$PROFILE" = 1 ] && [ -s "$WORK/cpu.pprof" ]; then
	prof_rps=$(field profile rps)
	go tool pprof -top -nodecount=100000 "$WORK/web" "$WORK/cpu.pprof" 2>/dev/null >"$WORK/cpu.top"
	cat <<EOF2

### Where Gatehouse's CPU goes (BENCH_PROFILE=1: GET /account, 1k sessions, $CONNS connections, $prof_rps req/s while profiled)

Flat CPU by package (the share of samples in each package's own code):

\`\`\`
$(awk '$2 ~ /%$/ && $NF != "" && NR > 5 {
	name = $6; for (i = 7; i <= NF; i++) name = name " " $i
	n = split(name, parts, "/"); last = parts[n]; sub(/\..*/, "", last)
	pkg = (n > 1 ? substr(name, 1, length(name) - length(parts[n])) : "") last
	share[pkg] += $2 + 0
} END { for (p in share) printf "%6.1f%%  %s\n", share[p], p }' "$WORK/cpu.top" | sort -rn | head -20)
\`\`\`

Top functions by cumulative CPU (the function and what it calls):

\`\`\`
$(go tool pprof -top -cum -nodecount=30 "$WORK/web" "$WORK/cpu.pprof" 2>/dev/null | sed -n '/flat%/,$p')
\`\`\`

Top functions by flat CPU:

\`\`\`
$(sed -n '/flat%/,$p' "$WORK/cpu.top" | head -26)
\`\`\`
EOF2
elif [ "$PROFILE" = 1 ]; then
	echo "(BENCH_PROFILE=1: no profile was taken; see the log above)"
fi
