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

# need_pip COMMAND PACKAGE: installs the PyPI PACKAGE unless COMMAND is already on PATH.
need_pip() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
    echo "installing PyPI package $pkg (for $cmd)" >&2
    python3 -m pip install -q "$pkg" >&2
}
