//! Case 3: `/media/{id}/...` over HTTP: content types, validators, ranges, cache policy, CORS,
//! and refusals for paths that are not part of the media's output.

use reqwest::Client;

use crate::{
    common::TestApp,
    corpus::{corpus, create_media, Corpus, Run},
    playback::load_hls,
    support::{client, expect_error, get_ok, header, max_age, raw_get, resolve, IMMUTABLE},
};

/// The paths of one of each kind of file a ready video media serves, with their types.
async fn one_of_each(client: &Client, corpus: &Corpus, run: &Run) -> Vec<(String, &'static str)> {
    let media = run.media();
    let base = corpus.url(&format!("/media/{}/", run.id()));
    let hls = load_hls(client, media["hls_url"].as_str().unwrap()).await;
    let p = &hls.playlists[0];
    let rel = |url: &str| url.strip_prefix(&base).expect("under the media").to_owned();
    vec![
        ("master.m3u8".into(), "application/vnd.apple.mpegurl"),
        (rel(&p.url), "application/vnd.apple.mpegurl"),
        ("manifest.mpd".into(), "application/dash+xml"),
        (rel(&resolve(&p.url, &p.playlist.map)), "video/mp4"),
        (
            rel(&resolve(&p.url, &p.playlist.segments[0].1)),
            "video/iso.segment",
        ),
        ("poster.jpg".into(), "image/jpeg"),
    ]
}

#[tokio::test]
async fn each_kind_of_file_has_its_content_type_and_public_ones_are_immutable() {
    let corpus = corpus().await;
    let client = client();
    let run = corpus.ready_run("h264_1080p");
    for (path, content_type) in one_of_each(&client, &corpus, run).await {
        let url = corpus.url(&format!("/media/{}/{path}", run.id()));
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers();
        assert_eq!(header(headers, "content-type"), Some(content_type), "{url}");
        assert_eq!(header(headers, "cache-control"), Some(IMMUTABLE), "{url}");
        assert_eq!(
            header(headers, "x-content-type-options"),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(header(headers, "accept-ranges"), Some("bytes"), "{url}");
        assert_eq!(header(headers, "surrogate-key"), Some(run.id()), "{url}");
        assert!(header(headers, "last-modified").is_some(), "{url}");
        assert_eq!(
            header(headers, "content-security-policy"),
            Some("default-src 'none'; sandbox"),
            "{url}: user content never runs as the service's page"
        );
        assert!(headers.get("cdn-cache-control").is_none(), "{url}");
        let length: usize = header(headers, "content-length").unwrap().parse().unwrap();
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), length, "{url}");
        assert!(!body.is_empty(), "{url}");
    }
}

#[tokio::test]
async fn etags_are_strong_and_if_none_match_gives_304() {
    let corpus = corpus().await;
    let client = client();
    let run = corpus.ready_run("h264_1080p");
    for (path, _) in one_of_each(&client, &corpus, run).await {
        let url = corpus.url(&format!("/media/{}/{path}", run.id()));
        let first = client.get(&url).send().await.unwrap();
        let etag = header(first.headers(), "etag").expect("ETag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{url}: not a strong ETag: {etag}"
        );
        let again = client.get(&url).send().await.unwrap();
        assert_eq!(
            header(again.headers(), "etag"),
            Some(etag.as_str()),
            "{url}: stable"
        );

        let cached = client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), 304, "{url}");
        assert_eq!(header(cached.headers(), "etag"), Some(etag.as_str()));
        assert_eq!(header(cached.headers(), "cache-control"), Some(IMMUTABLE));
        assert!(cached.bytes().await.unwrap().is_empty());

        let other = client
            .get(&url)
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200, "{url}");

        let head = client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200, "{url}");
        assert_eq!(header(head.headers(), "etag"), Some(etag.as_str()));
    }
}

#[tokio::test]
async fn a_range_of_a_segment_is_206_with_exactly_those_bytes() {
    let corpus = corpus().await;
    let client = client();
    let run = corpus.ready_run("h264_1080p");
    let kinds = one_of_each(&client, &corpus, run).await;
    let (segment, _) = kinds
        .iter()
        .find(|(_, t)| *t == "video/iso.segment")
        .unwrap();
    let url = corpus.url(&format!("/media/{}/{segment}", run.id()));
    let whole = get_ok(&client, &url).await;
    let len = whole.len();
    assert!(len > 1000, "a real segment: {len} bytes");

    for (range, from, to) in [
        ("bytes=100-1099".to_string(), 100, 1099),
        ("bytes=0-0".to_string(), 0, 0),
        (format!("bytes={}-", len - 10), len - 10, len - 1),
        ("bytes=-300".to_string(), len - 300, len - 1),
    ] {
        let response = client
            .get(&url)
            .header("range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            header(response.headers(), "content-range"),
            Some(format!("bytes {from}-{to}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            header(response.headers(), "content-type"),
            Some("video/iso.segment")
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &whole[from..=to], "{range}: the exact bytes");
    }

    let beyond = client
        .get(&url)
        .header("range", format!("bytes={}-", len + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        header(beyond.headers(), "content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // If-Range with the current ETag keeps the range; with another it gives the whole body.
    let etag = client.head(&url).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let kept = client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 206);
    let dropped = client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 200);
    assert_eq!(dropped.bytes().await.unwrap().len(), len);
}

#[tokio::test]
async fn a_player_on_another_origin_may_read_media() {
    let corpus = corpus().await;
    let client = client();
    let run = corpus.ready_run("h264_1080p");
    let url = corpus.url(&format!("/media/{}/master.m3u8", run.id()));
    let response = client
        .get(&url)
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        Some("*")
    );
    let exposed = header(response.headers(), "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["content-range", "content-length", "etag", "accept-ranges"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }

    // hls.js asks for segments with Range, which needs a preflight.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        header(preflight.headers(), "access-control-allow-origin"),
        Some("*")
    );
    let allowed = header(preflight.headers(), "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("range"), "{allowed}");
}

#[tokio::test]
async fn paths_that_are_not_part_of_the_output_are_404() {
    let corpus = corpus().await;
    let client = client();
    let run = corpus.ready_run("h264_1080p");
    let id = run.id();
    let stored_key = corpus
        .stored
        .iter()
        .map(|(k, _)| k)
        .find(|k| k.contains(id) && k.ends_with("master.m3u8"))
        .expect("the master playlist is stored");
    let key_from_media = stored_key[stored_key.find("media/").unwrap()..].to_owned();
    let run_dir = key_from_media.split('/').nth(2).unwrap().to_owned();
    for path in [
        "seg-0-99999.m4s".to_owned(),
        "init-99.m4s".to_owned(),
        "MASTER.M3U8".to_owned(),
        "master.m3u8.bak".to_owned(),
        "notes.txt".to_owned(),
        format!("{run_dir}/master.m3u8"),
        key_from_media.clone(),
        "poster.jpg/x".to_owned(),
    ] {
        let url = corpus.url(&format!("/media/{id}/{path}"));
        let response = client.get(&url).send().await.unwrap();
        let (headers, _) = expect_error(response, 404).await;
        let cache = header(&headers, "cache-control").unwrap_or_default();
        assert!(
            max_age(cache).is_some_and(|s| s <= 60) || cache.contains("no-store"),
            "{url}: a miss cached for long: {cache}"
        );
    }
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let corpus = corpus().await;
    let run = corpus.ready_run("h264_1080p");
    let id = run.id();
    let file_id = run.file["id"].as_str().unwrap();
    let master = get_ok(&client(), &corpus.url(&format!("/media/{id}/master.m3u8"))).await;
    for target in [
        format!("/media/{id}/../../files/{file_id}"),
        format!("/media/{id}/..%2f..%2ffiles%2f{file_id}"),
        format!("/media/{id}/%2e%2e/%2e%2e/files/{file_id}"),
        format!("/media/{id}/%2E%2E%2F%2E%2E%2Ffiles%2F{file_id}"),
        format!("/media/{id}/..\\..\\files\\{file_id}"),
        format!("/media/{id}/..%5c..%5cfiles%5c{file_id}"),
        format!("/media/{id}/./master.m3u8"),
        format!("/media/{id}/.%2fmaster.m3u8"),
        format!("/media/{id}//master.m3u8"),
        format!("/media/{id}/%2fetc%2fpasswd"),
        format!("/media/{id}/../../../../../../etc/passwd"),
        format!("/media/{id}/master.m3u8%00.jpg"),
        format!("/media/{id}/%00"),
        format!("/media/{id}/.."),
        format!("/media/{id}/.hidden"),
        format!("/media/..%2f{id}/master.m3u8"),
    ] {
        let response = raw_get(corpus.addr, &target).await;
        assert!(
            response.status == 400 || response.status == 404,
            "{target}: {} {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        assert_ne!(response.body, master, "{target} served the master playlist");
        assert!(
            !String::from_utf8_lossy(&response.body).contains("root:"),
            "{target} served a system file"
        );
    }
}

#[tokio::test]
async fn a_media_still_processing_is_404_media_not_ready_for_a_moment() {
    // No worker: the media stays queued.
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let client = client();
    let file = app.upload("not really a video", "v.mp4", "public").await;
    let public = create_media(&app, file["id"].as_str().unwrap(), Some("public")).await;
    let private = create_media(&app, file["id"].as_str().unwrap(), Some("private")).await;
    let public_id = public["id"].as_str().unwrap();
    for path in ["master.m3u8", "manifest.mpd", "poster.jpg", "init-0.m4s"] {
        let url = app.url(&format!("/media/{public_id}/{path}"));
        let response = client.get(&url).send().await.unwrap();
        let (headers, code) = expect_error(response, 404).await;
        assert_eq!(code, "media_not_ready", "{url}");
        let cache = header(&headers, "cache-control").unwrap_or_default();
        assert!(
            max_age(cache).is_some_and(|s| s <= 5),
            "{url}: a player polls, so a miss may be cached a few seconds at most: {cache}"
        );
        assert!(!cache.contains("immutable"), "{url}: {cache}");
    }
    // A private media says nothing, ready or not, without a signature.
    let private_id = private["id"].as_str().unwrap();
    let response = client
        .get(app.url(&format!("/media/{private_id}/master.m3u8")))
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(response, 403).await;
    assert_eq!(code, "signature_required");
    let signed = app
        .api(
            reqwest::Method::POST,
            &format!("/v1/media/{private_id}/signed-url"),
        )
        .json(&serde_json::json!({ "expires_in": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let signed: serde_json::Value = signed.json().await.unwrap();
    let response = client
        .get(signed["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(response, 404).await;
    assert_eq!(code, "media_not_ready");
    // And an id that does not exist is a plain 404.
    let response = client
        .get(app.url("/media/med_00000000000000000000/master.m3u8"))
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(response, 404).await;
    assert_eq!(code, "not_found");
    app.stop().await;
}
