#!/usr/bin/env bash
# cache_http: GET /v1/cache/{key} on a Release troupe-node with wrk at 50
# connections, vs redis-benchmark GET at 50 connections against a
# redis-server started here on loopback, in the same run (alternated, median
# of 3). Everything runs on 127.0.0.1 and stops by itself.
#   bench/cache_http.sh BUILD_DIR [--quick]
set -euo pipefail
build_dir="$1"
quick="${2:-}"
duration=5
reps=3
if [ "$quick" = "--quick" ]; then duration=1; reps=1; fi
node_bin="$build_dir/apps/troupe-node"
work=$(mktemp -d)
node_pid=""; redis_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One node with one I/O thread and two scheduler threads, logging errors only.
TROUPE_LOG_LEVEL=error TROUPE_GATEWAY_IO_THREADS="${IO_THREADS:-1}" "$node_bin" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/node.out" && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/node.out" | head -1)
token=$(cat "$work/data/token")
value=$(head -c 100 /dev/zero | tr '\0' 'v')
curl -sf -X PUT -H "Authorization: Bearer $token" --data-binary "$value" "$url/v1/cache/bench-key" >/dev/null

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$work/redis.out" 2>&1 &
redis_pid=$!
for _ in $(seq 200); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$redis_port" set bench-key "$value" >/dev/null

cat >"$work/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA

troupe_rps=(); redis_rps=(); troupe_p50=""; troupe_p99=""
for _ in $(seq "$reps"); do
  out=$(wrk -t 1 -c 50 -d "${duration}s" --latency -s "$work/auth.lua" "$url/v1/cache/bench-key")
  troupe_rps+=("$(echo "$out" | awk '/Requests\/sec/ {print $2}')")
  troupe_p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  troupe_p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  if [ -n "$non2xx" ]; then echo "wrk saw $non2xx non-2xx replies" >&2; exit 1; fi
  n=$(( duration * 60000 ))
  rout=$(redis-benchmark -p "$redis_port" -t get -c 50 -n "$n" -q 2>/dev/null | tr '\r' '\n' | grep '^GET' | tail -1)
  redis_rps+=("$(echo "$rout" | awk '{print $2}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t=$(median "${troupe_rps[@]}")
r=$(median "${redis_rps[@]}")
ratio=$(awk -v t="$t" -v r="$r" 'BEGIN {printf "%.4f", t / r}')
echo "cache_http (GET of a 100 B value, 50 connections, ${duration}s x $reps, medians; cores: $(nproc))"
echo "  troupe  $t req/s  (wrk latency p50 $troupe_p50, p99 $troupe_p99)"
echo "  redis   $r req/s  (redis-benchmark -t get -c 50)"
echo "  ratio   $ratio"
echo "{\"bench\": \"cache_http\", \"figure\": $t, \"unit\": \"req_per_s\", \"baseline\": $r, \"ratio\": $ratio, \"p50\": \"$troupe_p50\", \"p99\": \"$troupe_p99\", \"runs\": $reps}"
