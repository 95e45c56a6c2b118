#!/usr/bin/env bash
# Renders the shipped edge configs into a directory, filling their @NAME@ placeholders.
#
#   cdn-config/render.sh nginx OUT_DIR     -> OUT_DIR/reelay.conf (+ its include files)
#   cdn-config/render.sh varnish OUT_DIR   -> OUT_DIR/reelay.vcl
#
# Settings, from the environment:
#   EDGE_ORIGINS       Reelay nodes, comma-separated host:port   (default 127.0.0.1:8080)
#   EDGE_LISTEN        nginx `listen` argument                  (default 80)
#   EDGE_CACHE_DIR     nginx cache directory                    (default /var/cache/nginx/reelay)
#   EDGE_LOG_DIR       nginx access log directory               (default /var/log/nginx)
#   EDGE_PURGE_ALLOW   addresses or CIDRs, comma-separated, allowed to purge besides
#                      loopback: where Reelay nodes run          (default none)
#   REELAY_EDGE_SLICE_BYTES  nginx slice size; Reelay reads the same variable to name the
#                      slices it purges                          (default 1048576)
#
# Then: nginx -c OUT_DIR/reelay.conf, or varnishd -f OUT_DIR/reelay.vcl -a :80 ...
set -euo pipefail

kind=${1:?usage: render.sh nginx|varnish OUT_DIR}
out=${2:?usage: render.sh nginx|varnish OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)

origins=${EDGE_ORIGINS:-127.0.0.1:8080}
purge_allow=${EDGE_PURGE_ALLOW:-}
slice=${REELAY_EDGE_SLICE_BYTES:-1048576}
IFS=, read -r -a nodes <<<"$origins"
IFS=, read -r -a purgers <<<"$purge_allow"

case "$slice" in
'' | *[!0-9]*) echo "REELAY_EDGE_SLICE_BYTES must be a number of bytes" >&2; exit 1 ;;
esac

# fill FILE NAME=VALUE...: a line that is only `@NAME@` becomes VALUE (dropped when VALUE is
# empty); `@NAME@` inside a line becomes VALUE. awk reads the values from its environment, so
# no character in them is special.
fill() {
    local file=$1
    shift
    env "${@/#/FILL_}" awk '
        BEGIN { for (k in ENVIRON) if (k ~ /^FILL_/) value["@" substr(k, 6) "@"] = ENVIRON[k] }
        {
            line = $0
            trimmed = line
            gsub(/^[ \t]+|[ \t]+$/, "", trimmed)
            if (trimmed in value) {
                if (value[trimmed] != "") print value[trimmed]
                next
            }
            for (name in value)
                while ((p = index(line, name)) > 0)
                    line = substr(line, 1, p - 1) value[name] substr(line, p + length(name))
            print line
        }' "$file"
}

mkdir -p "$out"
case "$kind" in
nginx)
    upstreams="" allow=""
    for node in "${nodes[@]}"; do
        upstreams+="        server ${node// /} max_fails=2 fail_timeout=10s;"$'\n'
    done
    for who in "${purgers[@]}"; do
        [ -n "${who// /}" ] && allow+="            allow ${who// /};"$'\n'
    done
    for file in "$here"/nginx/*.conf; do
        fill "$file" \
            LISTEN="${EDGE_LISTEN:-80}" \
            UPSTREAMS="${upstreams%$'\n'}" \
            CACHE_DIR="${EDGE_CACHE_DIR:-/var/cache/nginx/reelay}" \
            LOG_DIR="${EDGE_LOG_DIR:-/var/log/nginx}" \
            PURGE_ALLOW="${allow%$'\n'}" \
            SLICE_BYTES="$slice" \
            >"$out/$(basename "$file")"
    done
    ;;
varnish)
    backends="" adds="" acl=""
    i=0
    for node in "${nodes[@]}"; do
        node=${node// /}
        i=$((i + 1))
        backends+="backend node$i {"$'\n'
        backends+="    .host = \"${node%:*}\";"$'\n'
        backends+="    .port = \"${node##*:}\";"$'\n'
        backends+="    .probe = reelay_ready;"$'\n'
        backends+="    .connect_timeout = 2s;"$'\n'
        backends+="    .first_byte_timeout = 60s;"$'\n'
        backends+="    .between_bytes_timeout = 60s;"$'\n'
        backends+="}"$'\n'
        adds+="    reelay.add_backend(node$i);"$'\n'
    done
    for who in "${purgers[@]}"; do
        who=${who// /}
        [ -z "$who" ] && continue
        case "$who" in
        */*) acl+="    \"${who%/*}\"/${who##*/};"$'\n' ;;
        *) acl+="    \"$who\";"$'\n' ;;
        esac
    done
    fill "$here/varnish/reelay.vcl" \
        BACKENDS="${backends%$'\n'}" \
        DIRECTOR_BACKENDS="${adds%$'\n'}" \
        PURGE_ACL="${acl%$'\n'}" \
        >"$out/reelay.vcl"
    ;;
*)
    echo "unknown edge kind $kind (nginx or varnish)" >&2
    exit 1
    ;;
esac
