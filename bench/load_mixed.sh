#!/usr/bin/env bash
# load_mixed: one Release node under CONNS concurrent clients (default
# 1,000) split evenly over four routes at once, each driven by its own wrk
# for the same time:
#   healthz    GET /healthz
#   cache_get  GET /v1/cache/{one of 1,000 keys}
#   cache_put  PUT /v1/cache/{a new key} (1 KB)
#   llm        POST /v1/messages through the node to the mock upstream, one
#              of 200 questions (the response cache answers the repeats)
# Reports per route: req/s, latency p50/p99 (wrk), non-2xx replies and
# socket errors; the node's RSS before and after. No baseline (absolute
# figures); the last line's figure is the worst route's p99 in ms.
#   bench/load_mixed.sh BUILD_DIR [--quick] [--conns N]
set -euo pipefail
build_dir="$1"
shift
duration=10
conns=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) duration=2; conns=100 ;;
    --conns) conns="$2"; shift ;;
  esac
  shift
done
node_bin="$build_dir/apps/troupe-node"
mock_bin="$build_dir/tests/support/mock_upstream/troupe-mock-upstream"
work=$(mktemp -d)
node_pid=""; mock_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Every wrk holds its share of connections open at once.
ulimit -n "$(ulimit -Hn)"

"$mock_bin" --listen 127.0.0.1:0 >"$work/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/mock.out" && break; sleep 0.05; done
mock_url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/mock.out" | head -1)

TROUPE_LOG_LEVEL=error TROUPE_ANTHROPIC_BASE_URL="$mock_url" ANTHROPIC_API_KEY=sk-ant-bench \
  "$node_bin" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/node.out" && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/node.out" | head -1)
token=$(cat "$work/data/token")
python3 - "$url" "$token" <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(1000):
    c.request("PUT", f"/v1/cache/load-{i}", body=b"v" * 1000,
              headers={"Authorization": f"Bearer {sys.argv[2]}"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY

cat >"$work/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/cache/load-" .. (n % 1000))
end
LUA
cat >"$work/put.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
wrk.method = "PUT"
wrk.body = string.rep("p", 1000)
local n = 0
local id = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/cache/new-" .. id .. "-" .. n)
end
LUA
cat >"$work/llm.lua" <<LUA
wrk.headers["x-api-key"] = "$token"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["content-type"] = "application/json"
wrk.method = "POST"
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"claude-load","max_tokens":64,"messages":[{"role":"user","content":"question ' ..
               (n % 200) .. '"}]}'
  return wrk.format(nil, "/v1/messages", nil, body)
end
LUA
cat >"$work/healthz.lua" <<LUA
LUA

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$node_pid/status"; }
rss_before=$(rss_kib)
share=$(( conns / 4 ))
routes=(healthz cache_get cache_put llm)
declare -A target=([healthz]=/healthz [cache_get]=/v1/cache/load-0 [cache_put]=/v1/cache/x
                   [llm]=/v1/messages)
declare -A script=([healthz]=healthz.lua [cache_get]=get.lua [cache_put]=put.lua [llm]=llm.lua)
wrk_pids=()
for r in "${routes[@]}"; do
  wrk -t 1 -c "$share" -d "${duration}s" --timeout 10s --latency -s "$work/${script[$r]}" \
    "$url${target[$r]}" >"$work/$r.out" 2>&1 &
  wrk_pids+=($!)
done
wait "${wrk_pids[@]}"
rss_after=$(rss_kib)

to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
  else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
  else print v }'; }
echo "load_mixed ($conns connections: $share per route, ${duration}s; cores: $(nproc))"
worst=0
for r in "${routes[@]}"; do
  out="$work/$r.out"
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx/ {print $4}' "$out"); non2xx=${non2xx:-0}
  errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out"); errors=${errors:-0}
  total=$(awk '/requests in/ {print $1}' "$out")
  printf '  %-10s %9s req/s  p50 %8.2f ms  p99 %8.2f ms  non-2xx %s  socket errors %s  (of %s)\n' \
    "$r" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$total"
  worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN {print (b > a) ? b : a}')
done
echo "  node RSS: $(( rss_before / 1024 )) MiB before, $(( rss_after / 1024 )) MiB after"
echo "{\"bench\": \"load_mixed\", \"figure\": $worst, \"unit\": \"ms_p99_worst_route\", \"baseline\": 0, \"ratio\": 0, \"p50\": 0, \"p99\": $worst, \"runs\": 1}"
