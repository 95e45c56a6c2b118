# Installs what Reelay's run and test commands need when it is missing: Debian packages with
# apt-get, Python packages with pip. Sourced by scripts/run and scripts/test.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2
        return 1
    fi
}

apt_updated=""
# need_deb COMMAND PACKAGE: installs PACKAGE unless COMMAND is already on PATH.
need_deb() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ]; then return 0; fi
    echo "installing Debian package $pkg (for $cmd)" >&2
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
}

# need_deb_file PATTERN PACKAGE: installs PACKAGE unless a file matches PATTERN (a glob), for
# packages that ship a module rather than a command.
need_deb_file() {
    local pattern=$1 pkg=$2
    if compgen -G "$pattern" >/dev/null; then return 0; fi
    echo "installing Debian package $pkg (for $pattern)" >&2
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
}

# need_pip COMMAND PACKAGE: installs the PyPI PACKAGE unless COMMAND is already on PATH.
need_pip() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
    echo "installing PyPI package $pkg (for $cmd)" >&2
    python3 -m pip install -q "$pkg" >&2
}

# pg_ready HOST PORT: true when something (PostgreSQL, Redis) accepts connections there.
pg_ready() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}

# Starts a PostgreSQL cluster in a temp dir on a free port (initdb + pg_ctl, trust auth),
# exports REELAY_TEST_DATABASE_URL and stops the cluster when the calling shell exits.
start_throwaway_postgres() {
    need_deb psql postgresql
    local bin port dir
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    # Not local: the EXIT trap below runs after this function has returned.
    pg_throwaway_run=()
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    dir=$(mktemp -d)
    # initdb refuses to run as root.
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        pg_throwaway_run=(runuser -u postgres --)
    fi
    "${pg_throwaway_run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
    "${pg_throwaway_run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    "${pg_throwaway_run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
    export REELAY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
    pg_throwaway_stop="$bin/pg_ctl -D $dir/data -m immediate stop"
    pg_throwaway_dir=$dir
    on_exit '"${pg_throwaway_run[@]}" $pg_throwaway_stop >/dev/null 2>&1; rm -rf "$pg_throwaway_dir"'
}

# Starts a throwaway redis-server on a free port, exports REELAY_TEST_REDIS_URL and stops it
# when the calling shell exits.
start_throwaway_redis() {
    need_deb redis-server redis-server
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis_throwaway_dir=$(mktemp -d)
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
        --dir "$redis_throwaway_dir" --pidfile "$redis_throwaway_dir/pid" --logfile "$redis_throwaway_dir/log"
    export REELAY_TEST_REDIS_URL="redis://127.0.0.1:$port"
    on_exit 'kill "$(cat "$redis_throwaway_dir/pid")" 2>/dev/null; rm -rf "$redis_throwaway_dir"'
}

# on_exit COMMAND: runs COMMAND when the calling shell exits, after those registered before.
exit_commands=""
on_exit() {
    exit_commands="${exit_commands}${1};"
    trap 'eval "$exit_commands"' EXIT
}
