//! Case 4: a private media plays only through one signed URL. The token the viewer got for the
//! master playlist is carried onto every URI of every manifest, so a stock player (ffmpeg here)
//! plays it all; anything else is a 403.

use reelay::{
    delivery::{file_scope, media_scope, signature::Signer},
    ids::{FileId, MediaId},
};
use reqwest::Client;
use serde_json::{json, Value};

use crate::{
    common::{ADMIN_KEY, SIGNING_KEYS},
    corpus::{corpus, Corpus, Run},
    support::{
        client, expect_error, ffmpeg_decode, get_ok, get_text, header, max_age, media_files,
        parse_master, parse_mpd, playlist_uris, resolve, unix_now, xml_attr, xml_tags,
    },
};

const LIFETIME: u64 = 600;

/// `POST /v1/media/{id}/signed-url` with the admin key.
async fn sign(client: &Client, corpus: &Corpus, id: &str, request: Value) -> reqwest::Response {
    client
        .post(corpus.url(&format!("/v1/media/{id}/signed-url")))
        .bearer_auth(ADMIN_KEY)
        .json(&request)
        .send()
        .await
        .unwrap()
}

async fn signed(client: &Client, corpus: &Corpus, run: &Run) -> Value {
    let response = sign(client, corpus, run.id(), json!({ "expires_in": LIFETIME })).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn query_of(url: &str) -> &str {
    url.split_once('?').expect("a signed URL has a query").1
}

fn param<'a>(query: &'a str, name: &str) -> &'a str {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {query}"))
}

/// The token as the three parameters `exp`, `kid` and `sig` of a query.
fn token(query: &str) -> [(String, String); 3] {
    ["exp", "kid", "sig"].map(|n| (n.to_owned(), param(query, n).to_owned()))
}

fn carries(uri: &str, token: &[(String, String); 3]) -> bool {
    let Some((_, query)) = uri.split_once('?') else {
        return false;
    };
    token.iter().all(|(name, value)| {
        query
            .split('&')
            .filter(|p| p.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            == vec![format!("{name}={value}")]
    })
}

fn private_run(corpus: &Corpus) -> &Run {
    let run = corpus.ready_run("private");
    assert_eq!(run.media()["access"], "private");
    run
}

#[tokio::test]
async fn without_a_signature_every_file_of_a_private_media_is_403() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let media = run.media();
    let base = corpus.url(&format!("/media/{}/", run.id()));
    assert_eq!(media["hls_url"], format!("{base}master.m3u8"));
    let signed = signed(&client, &corpus, run).await;
    let mut with_token = media.clone();
    with_token["hls_url"] = signed["url"].clone();
    with_token["dash_url"] = signed["dash_url"].clone();
    let files = media_files(&client, &with_token).await;
    let mut checked = 0;
    for file in files {
        let path = file.split('?').next().unwrap();
        let url = format!("{base}{path}");
        let response = client.get(&url).send().await.unwrap();
        let (headers, code) = expect_error(response, 403).await;
        assert_eq!(code, "signature_required", "{url}");
        assert!(
            headers.get("etag").is_none(),
            "{url}: nothing about the content"
        );
        let head = client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 403, "HEAD {url}");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} files");
}

#[tokio::test]
async fn a_signed_master_puts_the_token_on_every_uri_down_to_the_segments() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let signed = signed(&client, &corpus, run).await;
    let master_url = signed["url"].as_str().unwrap();
    let base = corpus.url(&format!("/media/{}/", run.id()));
    assert_eq!(
        master_url.split('?').next(),
        Some(format!("{base}master.m3u8").as_str())
    );
    assert_eq!(
        signed["dash_url"].as_str().unwrap(),
        format!("{base}manifest.mpd?{}", query_of(master_url))
    );
    let token = token(query_of(master_url));
    let expires_at = time::OffsetDateTime::parse(
        signed["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at.unix_timestamp().to_string(), token[0].1);

    let master_text = get_text(&client, master_url).await;
    let master = parse_master(&master_text);
    assert!(
        master.variants.len() >= 2,
        "a multi-variant master: {master_text}"
    );
    let uris = playlist_uris(&master_text);
    assert_eq!(uris.len(), master.playlists().len(), "{master_text}");
    let mut fetched = 0;
    for uri in uris {
        assert!(
            carries(&uri, &token),
            "{uri} lacks the token:\n{master_text}"
        );
        let playlist_url = resolve(master_url, &uri);
        let text = get_text(&client, &playlist_url).await;
        let inner = playlist_uris(&text);
        assert!(inner.len() >= 2, "{text}");
        for segment in inner {
            assert!(
                carries(&segment, &token),
                "{segment} lacks the token:\n{text}"
            );
            get_ok(&client, &resolve(&playlist_url, &segment)).await;
            fetched += 1;
        }
    }
    assert!(fetched >= 6, "{fetched} files");

    let poster = signed["poster_url"].as_str().expect("a poster URL");
    assert_eq!(poster, format!("{base}poster.jpg?{}", query_of(master_url)));
    let jpeg = get_ok(&client, poster).await;
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
}

#[tokio::test]
async fn the_signed_mpd_carries_the_escaped_token_in_its_templates() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let signed = signed(&client, &corpus, run).await;
    let dash_url = signed["dash_url"].as_str().unwrap();
    let query = query_of(dash_url);
    let escaped = query.replace('&', "&amp;");
    let mpd = get_text(&client, dash_url).await;
    let templates = xml_tags(&mpd, "SegmentTemplate");
    assert!(!templates.is_empty(), "{mpd}");
    for template in templates {
        for attribute in ["initialization", "media"] {
            let value = xml_attr(template, attribute).expect(attribute);
            assert!(
                value.ends_with(&format!("?{escaped}")),
                "{attribute}={value:?} lacks the XML-escaped token"
            );
        }
    }
    // Unescaped '&' would make the MPD ill-formed XML.
    let bare: Vec<&str> = mpd
        .match_indices('&')
        .map(|(i, _)| &mpd[i..(i + 6).min(mpd.len())])
        .collect();
    assert!(
        bare.iter().all(|s| s.starts_with("&amp;")
            || s.starts_with("&lt;")
            || s.starts_with("&gt;")
            || s.starts_with("&quot;")
            || s.starts_with("&apos;")),
        "an unescaped & in the MPD: {bare:?}"
    );
    // Every file the MPD names is served with the token it carries.
    for rep in parse_mpd(&mpd) {
        assert!(rep.init.ends_with(&format!("?{query}")), "{}", rep.init);
        get_ok(&client, &resolve(dash_url, &rep.init)).await;
        for segment in rep.segments {
            get_ok(&client, &resolve(dash_url, &segment)).await;
        }
    }
}

#[tokio::test]
async fn ffmpeg_plays_the_signed_master_and_mpd_end_to_end() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let signed = signed(&client, &corpus, run).await;
    let master_url = signed["url"].as_str().unwrap();
    let master = parse_master(&get_text(&client, master_url).await);
    let mut urls = vec![
        master_url.to_owned(),
        signed["dash_url"].as_str().unwrap().to_owned(),
    ];
    urls.extend(
        master
            .playlists()
            .iter()
            .map(|uri| resolve(master_url, uri)),
    );
    for url in urls {
        let decoded = ffmpeg_decode(&url).await;
        assert!(
            decoded.success && decoded.stderr.is_empty(),
            "{url}: {}",
            decoded.stderr
        );
        assert!(
            decoded.seconds + 0.1 >= run.input.duration,
            "{url}: decoded {} s of {} s",
            decoded.seconds,
            run.input.duration
        );
    }
}

#[tokio::test]
async fn tampered_expired_and_foreign_signatures_are_403() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let other = corpus.ready_run("private_again");
    let signed = signed(&client, &corpus, run).await;
    let query = query_of(signed["url"].as_str().unwrap()).to_owned();
    let other_query = query_of(signed_url_of(&client, &corpus, other).await.as_str()).to_owned();
    let id = run.id();
    let segment = {
        let master_url = signed["url"].as_str().unwrap();
        let master = parse_master(&get_text(&client, master_url).await);
        let playlist_url = resolve(master_url, &master.variants[0].uri);
        let text = get_text(&client, &playlist_url).await;
        let last = playlist_uris(&text).pop().unwrap();
        last.split('?').next().unwrap().to_owned()
    };
    let sig = param(&query, "sig");
    let mut flipped = sig.to_owned().into_bytes();
    flipped[sig.len() / 2] = if flipped[sig.len() / 2] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let flipped = String::from_utf8(flipped).unwrap();
    let exp = param(&query, "exp");
    let signer = Signer::from_spec(SIGNING_KEYS).unwrap();
    let media_id = MediaId::parse(id).unwrap();
    let expired = signer.sign(&media_scope(&media_id), &[], unix_now() - 5);
    let file_signed = signer.sign(
        &file_scope(&FileId::parse(run.file["id"].as_str().unwrap()).unwrap()),
        &[],
        unix_now() + 600,
    );
    let whole_tree = signer.sign("/media/", &[], unix_now() + 600);
    let forged = Signer::from_spec("k1:not-the-real-secret-0123456789")
        .unwrap()
        .sign(&media_scope(&media_id), &[], unix_now() + 600);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "flipped sig",
            query.replace(sig, &flipped),
            "signature_invalid",
        ),
        (
            "later exp",
            query.replace(
                &format!("exp={exp}"),
                &format!("exp={}", exp.parse::<u64>().unwrap() + 1),
            ),
            "signature_invalid",
        ),
        (
            "another media's token",
            other_query.clone(),
            "signature_invalid",
        ),
        ("the source file's token", file_signed, "signature_invalid"),
        ("a token for all media", whole_tree, "signature_invalid"),
        ("a forged key", forged, "signature_invalid"),
        ("expired", expired, "signature_expired"),
        ("no sig", query.replace(&format!("&sig={sig}"), ""), ""),
        ("a repeated sig", format!("{query}&sig={sig}"), ""),
    ];
    for path in [
        "master.m3u8",
        "manifest.mpd",
        segment.as_str(),
        "poster.jpg",
    ] {
        for (what, query, code) in &cases {
            let url = corpus.url(&format!("/media/{id}/{path}?{query}"));
            let response = client.get(&url).send().await.unwrap();
            let (headers, actual) = expect_error(response, 403).await;
            if !code.is_empty() {
                assert_eq!(actual, *code, "{what}: {url}");
            }
            assert!(headers.get("etag").is_none(), "{what}: {url}");
        }
    }
    // The genuine token still works, and the other media's token works on the other media.
    get_ok(
        &client,
        &corpus.url(&format!("/media/{id}/{segment}?{query}")),
    )
    .await;
    get_ok(
        &client,
        &corpus.url(&format!("/media/{}/master.m3u8?{other_query}", other.id())),
    )
    .await;
}

async fn signed_url_of(client: &Client, corpus: &Corpus, run: &Run) -> String {
    signed(client, corpus, run).await["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signed_responses_are_private_to_browsers_and_revalidate() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    let signed = signed(&client, &corpus, run).await;
    let master_url = signed["url"].as_str().unwrap();
    let master = parse_master(&get_text(&client, master_url).await);
    let playlist_url = resolve(master_url, &master.variants[0].uri);
    let text = get_text(&client, &playlist_url).await;
    let segment_url = resolve(&playlist_url, &playlist_uris(&text).pop().unwrap());
    for url in [
        master_url.to_owned(),
        playlist_url,
        signed["dash_url"].as_str().unwrap().to_owned(),
        segment_url,
        signed["poster_url"].as_str().unwrap().to_owned(),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers().clone();
        let cache = header(&headers, "cache-control").unwrap_or_default();
        assert!(cache.starts_with("private"), "{url}: {cache}");
        assert!(
            !cache.contains("public") && !cache.contains("immutable"),
            "{url}: {cache}"
        );
        let age = max_age(cache).unwrap_or_else(|| panic!("{url}: no max-age in {cache}"));
        assert!(
            age > 0 && age <= LIFETIME,
            "{url}: max-age {age} beyond the signature"
        );
        let edge = header(&headers, "cdn-cache-control").expect("CDN-Cache-Control");
        assert!(
            max_age(edge).is_some_and(|a| a <= LIFETIME),
            "{url}: {edge}"
        );

        // A rewritten manifest has its own validator, and it works.
        let etag = header(&headers, "etag").expect("ETag").to_owned();
        let body = response.bytes().await.unwrap();
        let again = client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{url}");
        if url.contains(".m3u8") || url.contains(".mpd") {
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("sig="), "{url}: served without the token");
        }
    }
}

#[tokio::test]
async fn a_media_signature_takes_only_a_lifetime() {
    let corpus = corpus().await;
    let client = client();
    let run = private_run(&corpus);
    for (request, status) in [
        (
            json!({ "expires_in": 60, "disposition": "attachment" }),
            422,
        ),
        (json!({ "expires_in": 60, "filename": "x.mp4" }), 422),
        (json!({ "expires_in": 0 }), 422),
        (json!({ "expires_in": 7 * 24 * 3600 + 1 }), 422),
        (json!({ "expires_in": "soon" }), 400),
    ] {
        let response = sign(&client, &corpus, run.id(), request.clone()).await;
        let (_, code) = expect_error(response, status).await;
        assert!(!code.is_empty(), "{request}");
    }
    let response = sign(&client, &corpus, "med_00000000000000000000", json!({})).await;
    expect_error(response, 404).await;
}
