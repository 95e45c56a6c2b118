# The nginx edge of docker/compose.yaml: Debian's nginx with the cache-purge module, and the
# shipped cdn-config/nginx config rendered at start from the environment (see
# cdn-config/render.sh for the variables). Build from the repository root:
#   docker build -f docker/edge.Dockerfile -t reelay-edge .

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-http-cache-purge \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log
COPY cdn-config /opt/reelay/cdn-config
ENV EDGE_LISTEN=8080 \
    EDGE_CACHE_DIR=/var/cache/nginx/reelay \
    EDGE_LOG_DIR=/var/log/nginx
EXPOSE 8080
CMD ["bash", "-c", "mkdir -p \"$EDGE_CACHE_DIR\" && /opt/reelay/cdn-config/render.sh nginx /etc/nginx/reelay && exec nginx -c /etc/nginx/reelay/reelay.conf -g 'daemon off; error_log stderr;'"]
