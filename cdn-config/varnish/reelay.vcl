# Varnish edge cache in front of one or several Reelay nodes (Debian bookworm: Varnish 7.1 with
# varnish-modules for xkey). A template: cdn-config/render.sh fills the @NAME@ placeholders
# (Reelay nodes, purge clients); start with `varnishd -f <out>/reelay.vcl -a :80 -s malloc,1g`.
# cdn-config/README.md explains every choice below; it is the same policy as the nginx config.
#
# - /files/ and /media/ are cached. Before serving one, Varnish asks Reelay whether the request
#   is allowed: the request is rewritten to GET /edge/check/<path>?<query> (cached by its full
#   URL, as long as Reelay says: 5 s at most), and restarted as the original on a 204. A
#   forged, expired or deleted URL is refused even when its bytes are cached.
# - Cache keys leave the signature out (one copy of a segment or file for every viewer), except
#   for playlists, whose body carries the viewer's token.
# - Objects are tagged with Reelay's Surrogate-Key; Reelay purges with `PURGE /` and
#   `xkey-purge: <id>` when a file or media is deleted.
# - /v1/ (API, uploads) is passed, never cached; request bodies stream to Reelay.
vcl 4.1;

import directors;
import std;
import xkey;

probe reelay_ready {
    .url = "/readyz";
    .interval = 2s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
    .initial = 2;
}

@BACKENDS@

acl reelay_purgers {
    "127.0.0.1";
    "::1";
@PURGE_ACL@
}

sub vcl_init {
    new reelay = directors.round_robin();
@DIRECTOR_BACKENDS@
}

sub vcl_recv {
    set req.backend_hint = reelay.backend();

    if (req.restarts == 0) {
        # Only this VCL sets these; a client's copies mean nothing.
        unset req.http.X-Reelay-Original;
        unset req.http.X-Reelay-Phase;
        unset req.http.X-Reelay-Checked;
        unset req.http.X-Reelay-Key;

        if (req.method == "PURGE") {
            if (client.ip !~ reelay_purgers) {
                return (synth(403, "forbidden"));
            }
            if (req.http.xkey-purge) {
                set req.http.X-Reelay-Purged = xkey.purge(req.http.xkey-purge);
                return (synth(200, "purged " + req.http.X-Reelay-Purged));
            }
            return (purge);
        }
        # The check is this edge's business, and metrics are the operator's.
        if (req.url ~ "^/edge/" || (req.url ~ "^/metrics" && client.ip !~ reelay_purgers)) {
            return (synth(404, "not_found"));
        }
    }

    if (req.url ~ "^/(files|media)/") {
        if (req.method != "GET" && req.method != "HEAD") {
            # CORS preflights and anything odd: Reelay answers, nothing is stored.
            return (pass);
        }
        unset req.http.Cookie;
        unset req.http.Authorization;
        if (!req.http.X-Reelay-Checked) {
            set req.http.X-Reelay-Original = req.url;
            set req.http.X-Reelay-Phase = "check";
            # A token covers a whole media: its check is asked for the master playlist, so a
            # viewer costs one check every few seconds, not one per segment.
            set req.url = "/edge/check" +
                regsub(req.url, "^(/media/[^/?]+/)[^?]*", "\1master.m3u8");
            return (hash);
        }
        set req.http.X-Reelay-Key = regsub(req.url, "\?.*$", "");
        if (req.url ~ "^/media/") {
            if (req.http.X-Reelay-Key ~ "\.(m3u8|mpd)$") {
                # Playlists carry the viewer's token in their URIs: one entry per query.
                set req.http.X-Reelay-Key = req.url;
            }
        } else {
            # A file's bytes depend on the path and on disposition/filename, not on the signature.
            if (req.url ~ "[?&]disposition=") {
                set req.http.X-Reelay-Key = req.http.X-Reelay-Key + "|d=" +
                    regsub(req.url, "^.*[?&]disposition=([^&]*).*$", "\1");
            }
            if (req.url ~ "[?&]filename=") {
                set req.http.X-Reelay-Key = req.http.X-Reelay-Key + "|f=" +
                    regsub(req.url, "^.*[?&]filename=([^&]*).*$", "\1");
            }
        }
        return (hash);
    }

    # The API, uploads, health: never cached; a request body streams through a pass.
    return (pass);
}

sub vcl_hash {
    if (req.http.X-Reelay-Phase == "check") {
        hash_data(req.url);
    } else if (req.http.X-Reelay-Key) {
        hash_data(req.http.X-Reelay-Key);
    } else {
        hash_data(req.url);
    }
    return (lookup);
}

sub vcl_backend_fetch {
    # Cached objects are fetched whole (Varnish serves ranges of them itself); a conditional
    # from the client is answered from the object.
    if (!bereq.uncacheable) {
        unset bereq.http.Range;
        unset bereq.http.If-Range;
        unset bereq.http.If-None-Match;
        unset bereq.http.If-Modified-Since;
    }
    unset bereq.http.X-Reelay-Original;
    unset bereq.http.X-Reelay-Phase;
    unset bereq.http.X-Reelay-Checked;
    unset bereq.http.X-Reelay-Key;
}

sub vcl_backend_response {
    if (bereq.url ~ "^/edge/check/") {
        # 204 allowed / 403 refused, kept as long as Reelay's Cache-Control says, 5 s at most.
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        if (beresp.status == 204 || beresp.status == 403) {
            if (beresp.status == 403 && beresp.ttl <= 0s) {
                set beresp.ttl = 5s;
            }
            if (beresp.ttl > 5s) {
                set beresp.ttl = 5s;
            }
            if (beresp.ttl <= 0s) {
                set beresp.uncacheable = true;
            }
        } else {
            set beresp.uncacheable = true;
            set beresp.ttl = 0s;
        }
        return (deliver);
    }

    if (bereq.url ~ "^/(files|media)/" && !bereq.uncacheable) {
        # Signed responses say `Cache-Control: private` to browsers; this edge checks every
        # request itself, so it decides by status. Content under an id never changes.
        set beresp.http.xkey = beresp.http.Surrogate-Key;
        unset beresp.http.Set-Cookie;
        if (beresp.status == 200) {
            set beresp.ttl = 7d;
            set beresp.grace = 1h;
            set beresp.do_stream = true;
        } else if (beresp.status == 404) {
            # As long as Reelay says (a few seconds: the id may be deleted or not ready yet).
            if (beresp.ttl > 5s) {
                set beresp.ttl = 5s;
            }
            set beresp.grace = 0s;
            if (beresp.ttl <= 0s) {
                set beresp.uncacheable = true;
            }
        } else {
            set beresp.uncacheable = true;
            set beresp.ttl = 0s;
        }
        return (deliver);
    }
}

sub vcl_deliver {
    if (req.http.X-Reelay-Phase == "check") {
        if (resp.status == 204) {
            set req.url = req.http.X-Reelay-Original;
            set req.http.X-Reelay-Checked = "1";
            unset req.http.X-Reelay-Phase;
            return (restart);
        }
        if (resp.status == 403 && resp.http.X-Reelay-Check == "gone") {
            return (synth(404, "not_found"));
        }
        if (resp.status == 403) {
            return (synth(403, "forbidden"));
        }
        # Not a delivery URL Reelay knows.
        if (resp.status == 400 || resp.status == 404) {
            return (synth(resp.status));
        }
        return (synth(503, "unavailable"));
    }
    if (req.url ~ "^/(files|media)/") {
        if (obj.uncacheable) {
            set resp.http.X-Cache = "PASS";
        } else if (obj.hits > 0) {
            set resp.http.X-Cache = "HIT";
        } else {
            set resp.http.X-Cache = "MISS";
        }
    }
    unset resp.http.xkey;
}

sub vcl_backend_error {
    set beresp.http.Content-Type = "application/json";
    set beresp.http.Cache-Control = "no-store";
    set beresp.http.Retry-After = "5";
    set beresp.status = 503;
    synthetic({"{"error":{"code":"unavailable","message":"the origin cannot be reached" } }
"});
    return (deliver);
}

sub vcl_synth {
    if (req.method == "PURGE") {
        set resp.http.Content-Type = "text/plain";
        synthetic(resp.reason + {"
"});
        return (deliver);
    }
    set resp.http.Content-Type = "application/json";
    set resp.http.Cache-Control = "no-store";
    set resp.http.X-Content-Type-Options = "nosniff";
    if (resp.status == 404) {
        synthetic({"{"error":{"code":"not_found","message":"no such resource" } }
"});
    } else if (resp.status == 400) {
        synthetic({"{"error":{"code":"invalid_id","message":"the id in the path is not a valid id" } }
"});
    } else if (resp.status == 403) {
        synthetic({"{"error":{"code":"forbidden","message":"a valid, unexpired signature is required" } }
"});
    } else {
        set resp.status = 503;
        set resp.http.Retry-After = "5";
        synthetic({"{"error":{"code":"unavailable","message":"the origin cannot be reached" } }
"});
    }
    return (deliver);
}
