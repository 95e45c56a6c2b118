#!/usr/bin/env bash
# Delivery throughput: Reelay versus nginx (sendfile on) serving the same bytes on loopback,
# measured with wrk in the same run, plus Reelay's peak RSS under download and upload load.
# Usage: benches/delivery.sh   (BENCH_SECONDS=10 per wrk run by default)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_deb nginx nginx
need_deb wrk wrk
. benches/lib.sh

[ -n "${REELAY_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as an unprivileged user
trap 'kill $(jobs -p) 2>/dev/null; [ -n "${nginx_pid:-}" ] && kill "$nginx_pid" 2>/dev/null; rm -rf "$work"' EXIT

head -c 4096 /dev/urandom > "$work/small"
head -c $((64 << 20)) /dev/urandom > "$work/medium"
head -c $((256 << 20)) /dev/urandom > "$work/large"
head -c $((1 << 30)) /dev/urandom > "$work/huge"

key=bench-admin-key-0123456789
port=$(free_port)
REELAY_ADMIN_KEY=$key REELAY_LOG=warn "$reelay_bin" serve \
    --listen "127.0.0.1:$port" --data-dir "$work/data" &
reelay_pid=$!
wait_http "http://127.0.0.1:$port/healthz"

mkdir -p "$work/nginx/files"
for name in small medium large; do
    id=$(curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/octet-stream' \
        -T "$work/$name" "http://127.0.0.1:$port/v1/files?access=public" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    declare "id_$name=$id"
    ln "$work/$name" "$work/nginx/files/$id"
done

nport=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$nport;
        root $work/nginx;
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
wait_http "http://127.0.0.1:$nport/files/$id_small"

r=http://127.0.0.1:$port
n=http://127.0.0.1:$nport
echo "| case | Reelay | nginx | ratio |"
echo "| --- | --- | --- | --- |"

read -r r_rps _ < <(wrk_run 64 "$r/files/$id_small")
read -r n_rps _ < <(wrk_run 64 "$n/files/$id_small")
echo "| 4 KiB file, 64 connections (req/s) | $r_rps | $n_rps | $(ratio "$r_rps" "$n_rps") |"

read -r _ r_mbs < <(wrk_run 16 "$r/files/$id_large" -s benches/range.lua)
read -r _ n_mbs < <(wrk_run 16 "$n/files/$id_large" -s benches/range.lua)
echo "| 1 MiB ranges of 256 MiB, 16 connections (MiB/s) | $r_mbs | $n_mbs | $(ratio "$r_mbs" "$n_mbs") |"

read -r _ r_mbs < <(wrk_run 4 "$r/files/$id_medium")
read -r _ n_mbs < <(wrk_run 4 "$n/files/$id_medium")
echo "| full 64 MiB file, 4 connections (MiB/s) | $r_mbs | $n_mbs | $(ratio "$r_mbs" "$n_mbs") |"

reset_peak_rss "$reelay_pid"
wrk_run 64 "$r/files/$id_large" > /dev/null
echo "| Reelay peak RSS, 64 concurrent 256 MiB downloads | $(peak_rss_mib "$reelay_pid") MiB | | |"

reset_peak_rss "$reelay_pid"
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/octet-stream' \
    -T "$work/huge" "$r/v1/files"
echo "| Reelay peak RSS, 1 GiB upload | $(peak_rss_mib "$reelay_pid") MiB | | |"
