//! Media through the edge. Segments are cached once for every viewer: the signature is not in
//! their cache key. Each viewer's token is still checked on every request, so a forged or
//! expired token is refused even for bytes the edge holds, and playlists, which carry the
//! viewer's token in their URIs, are never shared between tokens. A segment is fetched whole,
//! so a player's range is right on a cold cache too.

use serde_json::json;

use crate::support::{
    fetch_hls, ffmpeg_plays, playlist_uris, query_of, BadTokens, Kind, Stack, FILES_ROUTE,
    MEDIA_CHECK_ROUTE, MEDIA_ROUTE,
};

async fn public_segment_is_a_hit(kind: Kind) {
    let stack = Stack::start(kind).await;
    let id = stack.media("public").await;
    let master =
        String::from_utf8(stack.get_ok(&format!("/media/{id}/master.m3u8")).await).unwrap();
    let variant = format!("/media/{id}/{}", playlist_uris(&master)[0]);
    let playlist = String::from_utf8(stack.get_ok(&variant).await).unwrap();
    let segment = format!("/media/{id}/{}", playlist_uris(&playlist).last().unwrap());
    assert!(segment.ends_with(".m4s"), "{segment}");

    // The first request for the segment is a range: the edge fetches the segment whole and
    // answers the range from it.
    let range = stack.get_with(&segment, &[("range", "bytes=10-99")]).await;
    assert_eq!(range.status, 206, "{}", range.text());
    assert_eq!(range.cache, "MISS");
    let asked = stack.origin_hits(MEDIA_ROUTE).await;

    for _ in 0..2 {
        let again = stack.get(&segment).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.cache, "HIT", "{segment}");
        assert!(again.body[10..100] == range.body[..], "the range's bytes");
    }
    assert_eq!(stack.origin_hits(MEDIA_ROUTE).await, asked);
}

#[tokio::test]
async fn nginx_serves_a_media_segment_from_cache_on_the_second_get() {
    public_segment_is_a_hit(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_serves_a_media_segment_from_cache_on_the_second_get() {
    public_segment_is_a_hit(Kind::Varnish).await;
}

async fn two_tokens_share_segments(kind: Kind) {
    let stack = Stack::start(kind).await;
    let id = stack.media("private").await;
    let a = stack.signed_master(&id).await;
    let b = stack
        .signed(
            &format!("/v1/media/{id}/signed-url"),
            json!({ "expires_in": 900 }),
        )
        .await;
    assert_ne!(a, b, "two different tokens");

    let before = stack.origin_hits(MEDIA_ROUTE).await;
    let (playlists_a, files_a) = fetch_hls(&stack, &a).await;
    let after_a = stack.origin_hits(MEDIA_ROUTE).await;
    assert_eq!(
        after_a - before,
        (playlists_a.len() + files_a.len()) as u64,
        "the first viewer's requests all reach Reelay once"
    );

    let checks = stack.origin_hits(MEDIA_CHECK_ROUTE).await;
    let (playlists_b, files_b) = fetch_hls(&stack, &b).await;
    let after_b = stack.origin_hits(MEDIA_ROUTE).await;
    let checked = stack.origin_hits(MEDIA_CHECK_ROUTE).await - checks;
    assert!(
        (1..=2).contains(&checked),
        "a viewer's token is checked once per few seconds, not per file: {checked} checks for {}",
        playlists_b.len() + files_b.len()
    );
    assert_eq!(files_b.len(), files_a.len());
    assert!(
        files_b.iter().all(|f| f.contains(query_of(&b))),
        "the second viewer's playlists carry its own token"
    );
    assert_eq!(
        after_b - after_a,
        playlists_b.len() as u64,
        "only the second viewer's own playlists reach Reelay; its {} segments come from the edge",
        files_b.len()
    );

    // Both play to the end in a real player, and nothing more is asked of Reelay.
    ffmpeg_plays(&stack.edge.url(&a)).await;
    ffmpeg_plays(&stack.edge.url(&b)).await;
    assert_eq!(stack.origin_hits(MEDIA_ROUTE).await, after_b);
}

#[tokio::test]
async fn nginx_plays_two_tokens_from_one_cached_copy() {
    two_tokens_share_segments(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_plays_two_tokens_from_one_cached_copy() {
    two_tokens_share_segments(Kind::Varnish).await;
}

async fn bad_tokens_refused_for_cached_bytes(kind: Kind) {
    let stack = Stack::start(kind).await;
    let id = stack.media("private").await;
    let master = stack.signed_master(&id).await;
    let (_, files) = fetch_hls(&stack, &master).await;
    let segment = files.last().unwrap().split('?').next().unwrap().to_owned();
    let warm = stack.get(&format!("{segment}?{}", query_of(&master))).await;
    assert_eq!((warm.status, warm.cache.as_str()), (200, "HIT"));

    let file = stack.upload(vec![7; 10_000], "private").await;
    let signed_file = stack
        .signed(
            &format!("/v1/files/{file}/signed-url"),
            json!({ "expires_in": 600 }),
        )
        .await;
    let warm = stack.get(&signed_file).await;
    assert_eq!(warm.status, 200);
    let warm = stack.get(&signed_file).await;
    assert_eq!((warm.status, warm.cache.as_str()), (200, "HIT"));

    let media_bad = BadTokens::for_media(&id);
    let file_bad = BadTokens::for_file(&file);
    let cases = [
        ("segment, forged", format!("{segment}?{}", media_bad.forged)),
        (
            "segment, expired",
            format!("{segment}?{}", media_bad.expired),
        ),
        ("segment, unsigned", segment.clone()),
        (
            "master, forged",
            format!("/media/{id}/master.m3u8?{}", media_bad.forged),
        ),
        ("file, forged", format!("/files/{file}?{}", file_bad.forged)),
        (
            "file, expired",
            format!("/files/{file}?{}", file_bad.expired),
        ),
        ("file, unsigned", format!("/files/{file}")),
    ];
    let content = stack.origin_hits(MEDIA_ROUTE).await + stack.origin_hits(FILES_ROUTE).await;
    for (case, path) in cases {
        let refused = stack.get(&path).await;
        assert_eq!(refused.status, 403, "{case}: {}", refused.text());
        assert_eq!(refused.error_code(), "forbidden", "{case}");
        assert!(
            refused.cache.is_empty(),
            "{case}: no cached bytes behind a refusal"
        );
    }
    assert_eq!(
        stack.origin_hits(MEDIA_ROUTE).await + stack.origin_hits(FILES_ROUTE).await,
        content,
        "refused at the edge, not by Reelay's delivery"
    );
    // The valid tokens still play.
    assert_eq!(stack.get(&signed_file).await.status, 200);
    ffmpeg_plays(&stack.edge.url(&master)).await;
}

#[tokio::test]
async fn nginx_refuses_forged_and_expired_tokens_for_cached_bytes() {
    bad_tokens_refused_for_cached_bytes(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_refuses_forged_and_expired_tokens_for_cached_bytes() {
    bad_tokens_refused_for_cached_bytes(Kind::Varnish).await;
}
