#!/usr/bin/env bash
# Transcoding: Reelay's time from POST /v1/media to `ready` for a 20 s 1080p30 H.264 source,
# versus (a) the single hand-written ffmpeg command that decodes once and encodes the same
# 4-rung ladder with the same x264 preset (the physical floor here), and (b) one ffmpeg per
# rung. Wall time and CPU time (user+sys, children included) for each, in one run.
# Usage: benches/transcode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_deb ffmpeg ffmpeg
. benches/lib.sh

[ -n "${REELAY_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
preset=veryfast
seg=4

ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=440 \
    -t 20 -c:v libx264 -preset fast -b:v 8M -pix_fmt yuv420p -c:a aac -b:a 128k "$work/source.mp4"

gop=$((30 * seg))
# The ladder Reelay plans for this source (sizes, targets, VBV at 110%/150%, High profile).
x264="-c:v libx264 -preset $preset -profile:v high -g $gop -keyint_min $gop -sc_threshold 0"
rungs=("1920:1080:5000" "1280:720:2800" "852:480:1400" "640:360:800")

single() {
    mkdir -p "$work/single"
    ffmpeg -v error -y -i "$work/source.mp4" \
        -filter_complex "[0:v]split=4[a][b][c][d];[a]scale=1920:1080,format=yuv420p[o0];[b]scale=1280:720,format=yuv420p[o1];[c]scale=852:480,setsar=r=640/639:max=2147483647,format=yuv420p[o2];[d]scale=640:360,format=yuv420p[o3]" \
        -map "[o0]" -b:v:0 5000k -maxrate:v:0 5500k -bufsize:v:0 7500k \
        -map "[o1]" -b:v:1 2800k -maxrate:v:1 3080k -bufsize:v:1 4200k \
        -map "[o2]" -b:v:2 1400k -maxrate:v:2 1540k -bufsize:v:2 2100k \
        -map "[o3]" -b:v:3 800k -maxrate:v:3 880k -bufsize:v:3 1200k \
        $x264 -map 0:a -c:a aac -b:a 128k -ac 2 -ar 48000 \
        -f dash -seg_duration $seg -use_template 1 -use_timeline 1 -hls_playlist 1 \
        -adaptation_sets "id=0,streams=v id=1,streams=a" "$work/single/manifest.mpd"
}

per_rung() {
    mkdir -p "$work/per"
    local i=0
    for rung in "${rungs[@]}"; do
        IFS=: read -r w h b <<< "$rung"
        mkdir -p "$work/per/$i"
        ffmpeg -v error -y -i "$work/source.mp4" -vf "scale=$w:$h,format=yuv420p" \
            -b:v "${b}k" -maxrate "$((b * 11 / 10))k" -bufsize "$((b * 3 / 2))k" $x264 \
            -map 0:v -map 0:a -c:a aac -b:a 128k -ac 2 -ar 48000 \
            -f dash -seg_duration $seg -use_template 1 -use_timeline 1 -hls_playlist 1 "$work/per/$i/manifest.mpd"
        i=$((i + 1))
    done
}

cpu_of() { # cpu_of FUNCTION: prints "wall cpu" of running FUNCTION in a subshell
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.time()
subprocess.run(["bash", "-c", sys.argv[1]], check=True)
wall = time.time() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print("%.1f %.1f" % (wall, cpu))
PY
}
read -r s_wall s_cpu < <(cpu_of "$(declare -f single); x264='$x264'; work='$work'; seg=$seg; single")
read -r p_wall p_cpu < <(cpu_of "$(declare -f per_rung); x264='$x264'; work='$work'; seg=$seg; rungs=(${rungs[*]}); per_rung")

key=bench-admin-key-0123456789
port=$(free_port)
REELAY_ADMIN_KEY=$key REELAY_LOG=warn REELAY_X264_PRESET=$preset REELAY_SEGMENT_SECONDS=$seg \
    "$reelay_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" &
reelay_pid=$!
r=http://127.0.0.1:$port
wait_http "$r/healthz"
file_id=$(curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: video/mp4' \
    -T "$work/source.mp4" "$r/v1/files?filename=source.mp4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

proc_cpu() { # user+sys of the server and its reaped children (ffmpeg), in seconds
    python3 - "$reelay_pid" <<'PY'
import os, sys
f = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
hz = os.sysconf("SC_CLK_TCK")
print((int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / hz)
PY
}
cpu0=$(proc_cpu)
start=$(date +%s.%N)
media_id=$(curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"file_id\":\"$file_id\"}" "$r/v1/media" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
while :; do
    state=$(curl -fsS -H "Authorization: Bearer $key" "$r/v1/media/$media_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    [ "$state" = ready ] && break
    [ "$state" = failed ] && { echo "transcode failed" >&2; exit 1; }
    sleep 0.2
done
r_wall=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
r_cpu=$(python3 -c "print('%.1f' % ($(proc_cpu) - $cpu0))")
rungs_json=$(curl -fsS -H "Authorization: Bearer $key" "$r/v1/media/$media_id" | python3 -c 'import json,sys; print(" ".join("%sx%s" % (x["width"], x["height"]) for x in json.load(sys.stdin)["renditions"] if x["kind"] == "video"))')

echo "Reelay's ladder: $rungs_json (x264 $preset, ${seg} s segments)"
echo "| 20 s 1080p30 source | wall s | CPU s | Reelay wall / this |"
echo "| --- | --- | --- | --- |"
echo "| Reelay, POST /v1/media to ready | $r_wall | $r_cpu | 1.00 |"
echo "| one hand-written ffmpeg, decode once, 4 rungs | $s_wall | $s_cpu | $(ratio "$r_wall" "$s_wall") |"
echo "| one ffmpeg per rung (4 runs) | $p_wall | $p_cpu | $(ratio "$r_wall" "$p_wall") |"
