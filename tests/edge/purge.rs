//! Deletes reach the edge. Reelay purges a deleted file or media from the edges it is told of
//! (REELAY_PURGE_URLS), and the edge's access check refuses a deleted id.
//! - Varnish: one xkey purge drops every cached variant; gone within 2 s.
//! - nginx: the purge names exact keys, so the plain URLs (every slice of a file, every file of
//!   a media, whatever signature they were fetched with) are gone at once; the variants Reelay
//!   cannot name (a token's own playlists, `?disposition=`) are refused once the edge's cached
//!   check answer expires: 6 s at most (Reelay's 5 s, which nginx counts in whole seconds;
//!   cdn-config/README.md, "Deletes").

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    common::pattern,
    support::{fetch_hls, within, Kind, Stack, SLICE_BYTES},
};

/// Polls until every path answers 404 `not_found`, at most until `bound` after `since`;
/// panics naming those still served.
async fn gone_within(stack: &Stack, since: Instant, bound: Duration, paths: &[String], what: &str) {
    let left = bound.saturating_sub(since.elapsed());
    let held = within(left, || async {
        for path in paths {
            if stack.get(path).await.status != 404 {
                return false;
            }
        }
        true
    })
    .await;
    if held.is_none() {
        let mut still = Vec::new();
        for path in paths {
            let got = stack.get(path).await;
            if got.status != 404 {
                still.push(format!("{path}: {} {}", got.status, got.cache));
            }
        }
        panic!(
            "{what}: still served {bound:?} after the delete:\n{}",
            still.join("\n")
        );
    }
    for path in paths {
        let got = stack.get(path).await;
        assert_eq!(got.error_code(), "not_found", "{path}");
    }
}

struct Warm {
    deleted_at: Instant,
    /// URLs whose cache keys Reelay names in its purges.
    plain: Vec<String>,
    /// URLs only the access check refuses on nginx.
    variants: Vec<String>,
}

/// A public file of several slices, a private file and a private media, each fetched through
/// the edge until cached, then deleted.
async fn warm_then_delete(stack: &Stack) -> Warm {
    let public = stack
        .upload(pattern(3, (2 * SLICE_BYTES + 100) as usize), "public")
        .await;
    let private = stack.upload(pattern(4, 50_000), "private").await;
    let media = stack.media("private").await;
    let signed_file = stack
        .signed(
            &format!("/v1/files/{private}/signed-url"),
            json!({ "expires_in": 600 }),
        )
        .await;
    let attachment = stack
        .signed(
            &format!("/v1/files/{private}/signed-url"),
            json!({ "expires_in": 600, "disposition": "attachment" }),
        )
        .await;
    let master = stack.signed_master(&media).await;

    let plain_public = format!("/files/{public}");
    let mut plain = vec![plain_public.clone(), signed_file.clone()];
    let (playlists, files) = fetch_hls(stack, &master).await;
    plain.extend(files);
    let mut variants = vec![attachment];
    variants.extend(playlists);
    for path in plain.iter().chain(&variants) {
        stack.get_ok(path).await;
        let again = stack.get(path).await;
        assert_eq!(again.cache, "HIT", "{path} is cached before the delete");
    }

    let deleted_at = Instant::now();
    stack.delete(&format!("/v1/files/{public}")).await;
    stack.delete(&format!("/v1/files/{private}")).await;
    stack.delete(&format!("/v1/media/{media}")).await;
    Warm {
        deleted_at,
        plain,
        variants,
    }
}

#[tokio::test]
async fn varnish_stops_serving_deleted_files_and_media_within_2s() {
    let stack = Stack::start(Kind::Varnish).await;
    let warm = warm_then_delete(&stack).await;
    let everything: Vec<String> = warm.plain.into_iter().chain(warm.variants).collect();
    gone_within(
        &stack,
        warm.deleted_at,
        Duration::from_secs(2),
        &everything,
        "varnish",
    )
    .await;
}

#[tokio::test]
async fn nginx_stops_serving_plain_urls_at_once_and_variants_within_6s() {
    let stack = Stack::start(Kind::Nginx).await;
    let warm = warm_then_delete(&stack).await;
    let since = warm.deleted_at;
    let (plain, variants) = (Duration::from_secs(2), Duration::from_secs(6));
    gone_within(&stack, since, plain, &warm.plain, "nginx, purged URLs").await;
    gone_within(&stack, since, variants, &warm.variants, "nginx, variants").await;
}
