#!/usr/bin/env bash
# Upload throughput of one 256 MiB file: (a) raw, one POST /v1/files; (b) tus to Reelay in
# 8 MiB PATCHes; (c) tus to @tus/server + @tus/file-store (tests/tus-node/server.mjs) in the same
# PATCHes. One client for all three: curl, with every request of a tus upload in one curl process
# (`--next`) on one kept-alive connection, chunks cut beforehand, so the figures are the servers'.
# Every upload request goes without `Expect: 100-continue` (curl adds it to bodies over 1 MiB;
# browsers and tus-js-client never send it), so a tus upload does not pay one extra round trip
# per PATCH that no real tus client pays.
# Each case runs BENCH_RUNS times (3 by default); the table shows the median.
# Usage: benches/tus.sh   (BENCH_TUS_REFERENCE_ONLY=1 measures only @tus/server)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_deb node nodejs
need_deb npm npm
. benches/lib.sh

if [ ! -d tests/tus-node/node_modules ] || [ tests/tus-node/package-lock.json -nt tests/tus-node/node_modules ]; then
    (cd tests/tus-node && npm ci --no-audit --no-fund >&2)
fi
reference_only=${BENCH_TUS_REFERENCE_ONLY:-}
[ -n "$reference_only" ] || [ -n "${REELAY_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet
runs=${BENCH_RUNS:-3}
chunk=$((8 << 20))
size=$((256 << 20))

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
head -c "$size" /dev/urandom > "$work/source"
source_sha=$(sha256sum "$work/source" | cut -d' ' -f1)
mkdir "$work/chunks"
split -b "$chunk" -d -a 3 "$work/source" "$work/chunks/"

b64() { printf %s "$1" | base64 -w0; }
metadata="filename $(b64 source.bin),filetype $(b64 application/octet-stream),access $(b64 private)"

now() { date +%s.%N; }
mibs() { python3 -c "print('%.0f' % ($size / 1048576 / ($2 - $1)))"; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# tus_upload ENDPOINT [curl args for every request, e.g. auth]: creates an upload, sends the
# chunks as PATCHes in one curl process, checks each answer, prints "start end file-id" (the
# Reelay-File-Id of the last answer, or "-").
tus_upload() {
    local endpoint=$1
    shift
    local start location offset=0 args=() part n
    start=$(now)
    location=$(curl -fsS -o /dev/null -D - -X POST "$@" -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $size" -H "Upload-Metadata: $metadata" "$endpoint" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [ -n "$location" ] || { echo "POST $endpoint gave no Location" >&2; return 1; }
    for part in "$work"/chunks/*; do
        n=$(stat -c %s "$part")
        [ ${#args[@]} = 0 ] || args+=(--next)
        args+=(-sS -o /dev/null -X PATCH "$@" -H 'Expect:' -H 'Tus-Resumable: 1.0.0'
            -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $offset"
            -T "$part" -w '%{http_code} %header{upload-offset} %header{reelay-file-id}\n' "$location")
        offset=$((offset + n))
    done
    curl "${args[@]}" > "$work/patches"
    local end expected=0 code got id last_id=-
    end=$(now)
    while read -r code got id; do
        last_id=${id:--}
        expected=$((expected + chunk))
        [ "$expected" -le "$size" ] || expected=$size
        if [ "$code" != 204 ] || [ "$got" != "$expected" ]; then
            echo "PATCH $location: answered $code with Upload-Offset '$got', expected 204 and $expected" >&2
            return 1
        fi
    done < "$work/patches"
    echo "$start $end $last_id"
}

# rounds CASE...: runs each CASE (a command printing "start end file-id") once per round,
# BENCH_RUNS rounds, interleaved so that the page cache's writeback of earlier runs weighs on
# every case alike; `sync` before each run, and Reelay's files are deleted after theirs. Sets
# <CASE>_mibs to the median MiB/s.
rounds() {
    local round c line start end id
    declare -A got
    for round in $(seq 1 "$runs"); do
        for c in "$@"; do
            sync
            line=$("$c")
            read -r start end id <<< "$line"
            got[$c]+="$(mibs "$start" "$end") "
            if [ "$c" != reference_once ]; then
                curl -fsS -o /dev/null -X DELETE "${auth[@]}" "$r/v1/files/$id"
            fi
        done
    done
    for c in "$@"; do
        # shellcheck disable=SC2086
        printf -v "${c%_once}_mibs" %s "$(median ${got[$c]})"
        echo "$c: ${got[$c]}MiB/s" >&2
    done
}

# The reference: @tus/server with its file store.
tport=$(free_port)
mkdir "$work/tus-store"
node tests/tus-node/server.mjs --port "$tport" --dir "$work/tus-store" 2> "$work/tus-server.log" &
tus_endpoint=http://127.0.0.1:$tport/files
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null -X OPTIONS "$tus_endpoint" 2>/dev/null && break
    sleep 0.1
done
reference_once() {
    tus_upload "$tus_endpoint"
    rm -f "$work"/tus-store/*
}
# Once for correctness: the stored bytes are the source's.
tus_upload "$tus_endpoint" > /dev/null
stored=$(ls "$work"/tus-store/* | grep -v '\.json$')
[ "$(sha256sum "$stored" | cut -d' ' -f1)" = "$source_sha" ] || { echo "@tus/server stored other bytes" >&2; exit 1; }
rm -f "$work"/tus-store/*

if [ -n "$reference_only" ]; then
    rounds reference_once
    echo "| case | MiB/s |"
    echo "| --- | --- |"
    echo "| tus to @tus/server + @tus/file-store, 8 MiB PATCHes | $reference_mibs |"
    exit 0
fi

key=bench-admin-key-0123456789
port=$(free_port)
REELAY_ADMIN_KEY=$key REELAY_LOG=warn REELAY_WORKERS=0 "$reelay_bin" serve \
    --listen "127.0.0.1:$port" --data-dir "$work/data" &
r=http://127.0.0.1:$port
wait_http "$r/healthz"
auth=(-H "Authorization: Bearer $key")

# file_sha256 ID: the sha256 Reelay reports for a file.
file_sha256() {
    curl -fsS "${auth[@]}" "$r/v1/files/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])'
}

raw_once() {
    local start id
    start=$(now)
    id=$(curl -fsS -X POST "${auth[@]}" -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$work/source" \
        "$r/v1/files?filename=source.bin&access=private" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    echo "$start $(now) $id"
}
reelay_tus_once() {
    tus_upload "$r/v1/uploads" "${auth[@]}"
}
# Once each for correctness: the files Reelay made hold the source's bytes.
for upload in raw_once reelay_tus_once; do
    line=$($upload)
    read -r _ _ id <<< "$line"
    [ "$id" != - ] || { echo "$upload: no file id" >&2; exit 1; }
    got=$(file_sha256 "$id")
    [ "$got" = "$source_sha" ] || { echo "$upload: file $id has sha256 $got, not $source_sha" >&2; exit 1; }
done
rounds raw_once reelay_tus_once reference_once

echo "| case | MiB/s | ratio | target |"
echo "| --- | --- | --- | --- |"
echo "| raw POST /v1/files, one request | $raw_mibs | | |"
echo "| tus to Reelay, 8 MiB PATCHes | $reelay_tus_mibs | $(ratio "$reelay_tus_mibs" "$raw_mibs") of raw | >= 0.8 |"
echo "| tus to @tus/server + @tus/file-store, 8 MiB PATCHes | $reference_mibs | Reelay $(ratio "$reelay_tus_mibs" "$reference_mibs")x | > 1 |"
