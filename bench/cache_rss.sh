#!/usr/bin/env bash
# cache_rss: the node's resident memory while a flood of puts far larger than
# the cache's memory budget goes in. A Release node with
# cache.memory_budget_bytes = BUDGET_MIB (default 1024, the configured
# default); wrk PUTs distinct keys of 64 KiB values for SECONDS_FLOOD
# (default 30) at 8 connections; the node's VmRSS before and after, its peak
# (VmHWM) from /proc, and what /v1/cache accounts. Figure: peak RSS;
# baseline: the budget; ratio: budget / peak (>= 1: the node stayed within).
#   bench/cache_rss.sh BUILD_DIR [--quick]
set -euo pipefail
build_dir="$1"
quick="${2:-}"
budget_mib="${BUDGET_MIB:-1024}"
seconds="${SECONDS_FLOOD:-30}"
if [ "$quick" = "--quick" ]; then seconds=1; fi
work=$(mktemp -d)
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

TROUPE_LOG_LEVEL=error TROUPE_CACHE_MEMORY_BUDGET_BYTES=$((budget_mib << 20)) \
  "$build_dir/apps/troupe-node" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/node.out" && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/node.out" | head -1)
token=$(cat "$work/data/token")
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$node_pid/status"; }

cat >"$work/flood.lua" <<LUA
local body = string.rep("v", 65536)
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/cache/flood-" .. math.random(1, 2^30) .. "-" .. n,
                    {["Authorization"] = "Bearer $token"}, body)
end
LUA
rss_before=$(kib VmRSS)
out=$(wrk -t 2 -c 8 -d "${seconds}s" -s "$work/flood.lua" "$url")
puts=$(echo "$out" | awk '/requests in/ {print $1}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
if [ -n "$non2xx" ]; then echo "wrk saw $non2xx non-2xx replies" >&2; exit 1; fi
sleep 1
rss_after=$(kib VmRSS)
hwm=$(kib VmHWM)
stats=$(curl -sf -H "Authorization: Bearer $token" "$url/v1/cache")
hot_bytes=$(echo "$stats" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["bytes"]))')
flood_mib=$(( puts * 64 / 1024 ))
growth_mib=$(( (hwm - rss_before) / 1024 ))
echo "cache_rss (budget ${budget_mib} MiB, ${seconds} s flood of 64 KiB puts)"
echo "  flooded     ${flood_mib} MiB in ${puts} puts"
echo "  RSS before  $((rss_before / 1024)) MiB, after $((rss_after / 1024)) MiB, peak $((hwm / 1024)) MiB"
echo "  hot tier    $((hot_bytes >> 20)) MiB accounted (budget ${budget_mib} MiB)"
echo "  peak RSS    $((hwm / 1024)) MiB (growth ${growth_mib} MiB) for a budget of ${budget_mib} MiB"
printf '{"bench": "cache_rss", "figure": %d, "unit": "MiB peak RSS", "baseline": %d, "ratio": %s, "runs": 1}\n' \
  "$((hwm / 1024))" "$budget_mib" "$(python3 -c "print(round($budget_mib / ($hwm / 1024), 3))")"
