# Helpers shared by the benchmark scripts.

# The release binary, wherever cargo puts it.
reelay_bin="${CARGO_TARGET_DIR:-target}/release/reelay"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A free port whose +10000 neighbour is free too (SeaweedFS puts gRPC there).
free_port_pair() {
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p < 40000:
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p + 10000)); print(p); break
        except OSError:
            pass
'
}

wait_http() {
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}

# wrk_run NAME CONNECTIONS URL [extra wrk args]: prints "requests/s MB/s" for one run.
wrk_run() {
    local conns=$1 url=$2
    shift 2
    wrk -t2 -c"$conns" -d"${BENCH_SECONDS:-10}s" "$@" "$url" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
scale = {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit("wrk saw %s error responses" % errors.group(1))
print("%.1f %.1f" % (rps, float(m.group(1)) * scale))'
}

# Peak resident set of PID since the last reset, in MiB (VmHWM).
peak_rss_mib() {
    awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# Resets PID's peak-RSS counter so the next phase is measured on its own.
reset_peak_rss() {
    echo 5 > "/proc/$1/clear_refs"
}

ratio() {
    python3 -c "print('%.2f' % ($1 / $2))"
}
