#!/usr/bin/env bash
# The nginx edge (cdn-config/nginx, rendered by cdn-config/render.sh) in front of a release
# Reelay, measured in one run:
#   1. throughput of a cached 1 MiB file through the edge (every request still passes the
#      edge's access check, itself cached) versus nginx serving the same bytes from disk;
#   2. origin requests when 100 viewers, each with their own signed token, fetch the same 20
#      segments of a private media at once (target: 20 segment fetches from Reelay).
# Usage: benches/edge.sh   (BENCH_SECONDS=10 per wrk run, BENCH_ROUNDS=3 alternating runs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_deb nginx nginx
need_deb_file /usr/lib/nginx/modules/ngx_http_cache_purge_module.so libnginx-mod-http-cache-purge
need_deb wrk wrk
need_deb ffmpeg ffmpeg
. benches/lib.sh

[ -n "${REELAY_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin reelay
work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as an unprivileged user
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT

key=bench-admin-key-0123456789
port=$(free_port)
eport=$(free_port)
sport=$(free_port)
REELAY_ADMIN_KEY=$key REELAY_SIGNING_KEYS=k1:bench-signing-secret-0123456789 REELAY_LOG=warn \
    REELAY_SEGMENT_SECONDS=1 REELAY_PURGE_URLS="nginx=http://127.0.0.1:$eport/_purge" \
    "$reelay_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/reelay.log" &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"

mkdir -p "$work/edge/cache"
EDGE_ORIGINS="127.0.0.1:$port" EDGE_LISTEN="127.0.0.1:$eport" EDGE_CACHE_DIR="$work/edge/cache" \
    EDGE_LOG_DIR="$work/edge" cdn-config/render.sh nginx "$work/edge/conf"
nginx -p "$work/edge" -c "$work/edge/conf/reelay.conf" \
    -g "daemon off; pid $work/edge/nginx.pid; error_log $work/edge/error.log;" &
pids+=($!)
wait_http "http://127.0.0.1:$eport/healthz"

r=http://127.0.0.1:$port
e=http://127.0.0.1:$eport
s=http://127.0.0.1:$sport
api() { curl -fsS -H "Authorization: Bearer $key" "$@"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# Requests Reelay answered on one route, from its /metrics.
origin_count() {
    curl -fsS "$r/metrics" | python3 -c '
import sys
route = sys.argv[1]
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in sys.stdin
              if l.startswith("reelay_http_requests_total{") and "route=\"%s\"" % route in l)))' "$1"
}

# 1. A cached 1 MiB file through the edge versus the same bytes from disk.
head -c $((1 << 20)) /dev/urandom >"$work/mib"
id=$(api -X POST -H 'Content-Type: application/octet-stream' -T "$work/mib" "$r/v1/files?access=public" | json '["id"]')
mkdir -p "$work/static/files"
ln "$work/mib" "$work/static/files/$id"
cat >"$work/static.conf" <<NGINX
worker_processes auto;
pid $work/static.pid;
error_log $work/static-error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$sport;
        root $work/static;
    }
}
NGINX
nginx -p "$work" -c "$work/static.conf" &
pids+=($!)
wait_http "$s/files/$id"
curl -fsS -o /dev/null "$e/files/$id"
status=$(curl -fsS -o /dev/null -D - "$e/files/$id" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}')
[ "$status" = HIT ] || { echo "the edge did not cache the file ($status)" >&2; exit 1; }

# Alternating rounds, the median of each side: one run each is at the mercy of a noisy machine.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
before=$(origin_count '/files/{id}')
e_runs=() s_runs=() e_reqs=() s_reqs=()
for _ in $(seq 1 "${BENCH_ROUNDS:-3}"); do
    read -r rps mbs < <(wrk_run 16 "$e/files/$id")
    e_reqs+=("$rps") e_runs+=("$mbs")
    read -r rps mbs < <(wrk_run 16 "$s/files/$id")
    s_reqs+=("$rps") s_runs+=("$mbs")
done
after=$(origin_count '/files/{id}')
e_mbs=$(median "${e_runs[@]}") s_mbs=$(median "${s_runs[@]}")
e_rps=$(median "${e_reqs[@]}") s_rps=$(median "${s_reqs[@]}")
echo "| case | nginx edge (cached) | nginx from disk | ratio |"
echo "| --- | --- | --- | --- |"
echo "| 1 MiB file, 16 connections, median of ${BENCH_ROUNDS:-3} (MiB/s) | $e_mbs | $s_mbs | $(ratio "$e_mbs" "$s_mbs") |"
echo "| 1 MiB file, 16 connections, median of ${BENCH_ROUNDS:-3} (req/s) | $e_rps | $s_rps | $(ratio "$e_rps" "$s_rps") |"
echo "| Reelay requests for the file during the edge run | $((after - before)) | | |"

# 2. 100 viewers with their own tokens fetch the same 20 segments of a private media at once.
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=320x180:rate=24:duration=21 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$work/clip.mp4"
media=$(api -X POST -H 'Content-Type: video/mp4' -T "$work/clip.mp4" \
    "$r/v1/files?filename=clip.mp4&access=private&transcode=true" | json '["media"]["id"]')
for _ in $(seq 1 300); do
    state=$(api "$r/v1/media/$media" | json '["state"]')
    [ "$state" = ready ] && break
    [ "$state" = failed ] && { echo "the media failed" >&2; exit 1; }
    sleep 0.2
done
for n in $(seq 1 100); do
    api -H 'Content-Type: application/json' -d "{\"expires_in\": $((600 + n))}" \
        "$r/v1/media/$media/signed-url" | json '["url"]'
done >"$work/tokens"

# The 20 segment URLs of the first video rendition, from one viewer's playlists.
python3 - "$e" "$(head -n 1 "$work/tokens")" >"$work/segments" <<'PY'
import sys, urllib.parse, urllib.request

edge, master = sys.argv[1], urllib.parse.urlsplit(sys.argv[2])
master = edge + master.path + "?" + master.query

def lines(url):
    with urllib.request.urlopen(url) as response:
        return [l for l in response.read().decode().splitlines() if l and not l.startswith("#")]

variant = urllib.parse.urljoin(master, lines(master)[0])
segments = [urllib.parse.urljoin(variant, l).split("?")[0] for l in lines(variant)][:20]
assert len(segments) == 20, segments
print("\n".join(segments))
PY

segments_before=$(origin_count '/media/{id}/{*path}')
checks_before=$(origin_count '/edge/check/media/{id}/{*path}')
python3 - "$work/tokens" "$work/segments" <<'PY'
import concurrent.futures, sys, urllib.parse, urllib.request

tokens = open(sys.argv[1]).read().split()
segments = open(sys.argv[2]).read().split()

def viewer(token):
    query = urllib.parse.urlsplit(token).query
    for segment in segments:
        with urllib.request.urlopen(segment + "?" + query) as response:
            assert response.status == 200
            response.read()

with concurrent.futures.ThreadPoolExecutor(max_workers=len(tokens)) as pool:
    list(pool.map(viewer, tokens))
PY
segments_after=$(origin_count '/media/{id}/{*path}')
checks_after=$(origin_count '/edge/check/media/{id}/{*path}')
echo
echo "| 100 viewers x the same 20 segments (2,000 requests) | Reelay requests |"
echo "| --- | --- |"
echo "| segment fetches (target: 20) | $((segments_after - segments_before)) |"
echo "| access checks (one per token per 5 s) | $((checks_after - checks_before)) |"
