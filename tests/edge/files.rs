//! Files through the edge: the second GET is served from the edge's cache without asking
//! Reelay for the bytes, and ranges are right from a cold and from a warm cache, on files of
//! several nginx slices (a range that crosses a slice boundary is assembled from two).

use crate::{
    common::pattern,
    support::{Kind, Stack, FILES_ROUTE, SLICE_BYTES},
};

async fn second_get_is_a_hit(kind: Kind) {
    let stack = Stack::start(kind).await;
    let body = pattern(1, (3 * SLICE_BYTES + 12_345) as usize);
    let id = stack.upload(body.clone(), "public").await;
    let path = format!("/files/{id}");

    let first = stack.get(&path).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.body == body, "the first answer carries the file");
    assert_eq!(first.cache, "MISS");
    let asked = stack.origin_hits(FILES_ROUTE).await;

    let second = stack.get(&path).await;
    assert_eq!(second.status, 200);
    assert!(second.body == body, "the cached answer carries the file");
    assert_eq!(second.cache, "HIT");
    assert_eq!(
        stack.origin_hits(FILES_ROUTE).await,
        asked,
        "Reelay was not asked for the bytes again"
    );
}

#[tokio::test]
async fn nginx_serves_a_public_file_from_cache_on_the_second_get() {
    second_get_is_a_hit(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_serves_a_public_file_from_cache_on_the_second_get() {
    second_get_is_a_hit(Kind::Varnish).await;
}

async fn ranges_cold_and_warm(kind: Kind) {
    let stack = Stack::start(kind).await;
    let len = 3 * SLICE_BYTES + SLICE_BYTES / 2;
    let body = pattern(2, len as usize);
    let s = SLICE_BYTES;
    let ranges: Vec<(String, std::ops::Range<u64>)> = vec![
        ("bytes=0-99".into(), 0..100),
        (format!("bytes={}-{}", s - 10, s + 9), s - 10..s + 10),
        (
            format!("bytes={}-{}", 2 * s + 5, 3 * s + 99),
            2 * s + 5..3 * s + 100,
        ),
        ("bytes=-500".into(), len - 500..len),
        (format!("bytes={}-", 3 * s + 1), 3 * s + 1..len),
    ];
    for (header, span) in ranges {
        // A file of its own for each range, so the first request meets a cold cache.
        let id = stack.upload(body.clone(), "public").await;
        let path = format!("/files/{id}");
        for temperature in ["cold", "warm"] {
            let got = stack.get_with(&path, &[("range", &header)]).await;
            assert_eq!(got.status, 206, "{temperature} {header}: {}", got.text());
            assert_eq!(
                got.header("content-range"),
                Some(format!("bytes {}-{}/{len}", span.start, span.end - 1).as_str()),
                "{temperature} {header}"
            );
            assert!(
                got.body == body[span.start as usize..span.end as usize],
                "{temperature} {header}: the bytes of the range"
            );
            if temperature == "warm" {
                assert_eq!(got.cache, "HIT", "{header}");
            }
        }
        // And the whole file, put together from what the ranges cached and what they did not.
        let whole = stack.get(&path).await;
        assert_eq!(whole.status, 200);
        assert!(
            whole.body == body,
            "{header}: the whole file after the range"
        );
    }
}

#[tokio::test]
async fn nginx_answers_ranges_across_slices_cold_and_warm() {
    ranges_cold_and_warm(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_answers_ranges_cold_and_warm() {
    ranges_cold_and_warm(Kind::Varnish).await;
}

/// nginx decodes and normalizes a path before choosing a location; Reelay reads the path as
/// sent. `/files/A/x%2f..%2f..%2fB` is file A under an odd name to Reelay and `/files/B` once
/// normalized: an edge keying on the normalized path would store A's bytes as B's.
async fn odd_paths_do_not_fill_another_files_entry(kind: Kind) {
    let stack = Stack::start(kind).await;
    let a = stack
        .upload(b"the attacker's bytes".to_vec(), "public")
        .await;
    let b = stack.upload(b"the victim's bytes".to_vec(), "public").await;
    let odd = stack.get(&format!("/files/{a}/x%2f..%2f..%2f{b}")).await;
    assert!(
        odd.body != b"the victim's bytes",
        "{}: {}",
        odd.status,
        odd.text()
    );
    for _ in 0..2 {
        assert_eq!(
            stack.get_ok(&format!("/files/{b}")).await,
            b"the victim's bytes"
        );
    }
}

#[tokio::test]
async fn nginx_keys_entries_by_the_path_reelay_reads() {
    odd_paths_do_not_fill_another_files_entry(Kind::Nginx).await;
}

#[tokio::test]
async fn varnish_keys_entries_by_the_path_reelay_reads() {
    odd_paths_do_not_fill_another_files_entry(Kind::Varnish).await;
}
