//! Signed URLs (DESIGN.md "Signatures"): a private file is served only with a valid signature
//! over its path and every parameter; any change to the URL is a 403; the first configured
//! key signs and every listed key verifies.

use std::time::Duration;

use reelay::{
    delivery::{file_scope, signature::Signer},
    ids::FileId,
};
use reqwest::Method;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    common::{TestApp, SIGNING_KEYS},
    support::{expect_error, one_header},
};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The value of `name` in a URL's query.
fn query_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').expect("a query").1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {url}"))
        .to_owned()
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let old = format!("{name}={}", query_param(url, name));
    let replaced = url.replacen(&old, &format!("{name}={value}"), 1);
    assert_ne!(replaced, url);
    replaced
}

async fn status_and_code(app: &TestApp, url: &str) -> (u16, Option<String>) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        return (200, None);
    }
    let (_, code) = expect_error(response, status).await;
    (status, Some(code))
}

async fn assert_refused(app: &TestApp, url: &str, code: &str) {
    let response = app.client.get(url).send().await.unwrap();
    let (headers, actual) = expect_error(response, 403).await;
    assert_eq!(actual, code, "{url}");
    assert!(
        headers.get("content-disposition").is_none(),
        "no content leaks"
    );
}

async fn private_file(app: &TestApp, body: &str) -> Value {
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", "secret.txt")])
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.unwrap();
    assert_eq!(file["access"], "private", "private is the default");
    file
}

#[tokio::test]
async fn a_private_file_is_403_without_a_signature_and_200_with_one() {
    let app = TestApp::spawn().await;
    let file = private_file(&app, "top secret").await;
    let id = file["id"].as_str().unwrap();
    let plain = file["url"].as_str().unwrap();
    assert_refused(&app, plain, "signature_required").await;
    assert_refused(&app, &format!("{plain}/secret.txt"), "signature_required").await;
    let head = app.client.head(plain).send().await.unwrap();
    assert_eq!(head.status(), 403);

    let response = app
        .api(Method::POST, &format!("/v1/files/{id}/signed-url"))
        .json(&json!({ "expires_in": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let signed: Value = response.json().await.unwrap();
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{plain}?")), "{url}");
    let expires_at = OffsetDateTime::parse(signed["expires_at"].as_str().unwrap(), &Rfc3339)
        .expect("expires_at is RFC 3339");
    let lifetime = expires_at.unix_timestamp() - unix_now() as i64;
    assert!((590..=600).contains(&lifetime), "{lifetime}");
    assert_eq!(
        query_param(url, "exp"),
        expires_at.unix_timestamp().to_string()
    );

    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "top secret");

    // The signature covers the file, whatever name follows it in the path.
    let (path, query) = url.split_once('?').unwrap();
    let named = format!("{path}/any-name.txt?{query}");
    assert_eq!(status_and_code(&app, &named).await, (200, None));
    app.stop().await;
}

#[tokio::test]
async fn flipping_any_character_of_the_signature_is_403() {
    let app = TestApp::spawn().await;
    let file = private_file(&app, "flip").await;
    let url = app
        .signed_url(file["id"].as_str().unwrap(), json!({ "expires_in": 600 }))
        .await;
    let sig = query_param(&url, "sig");
    assert_eq!(sig.len(), 43, "base64url of a 32-byte MAC");
    let mut tried = 0;
    for position in 0..sig.len() {
        let original = sig.as_bytes()[position];
        let index = BASE64URL
            .iter()
            .position(|&c| c == original)
            .expect("base64url");
        // The lowest bit (the hardest case in the last, partly padding, character) and a
        // high one.
        for mask in [1, 32] {
            let mut mutated = sig.clone().into_bytes();
            mutated[position] = BASE64URL[index ^ mask];
            let mutated = String::from_utf8(mutated).unwrap();
            let forged = replace_param(&url, "sig", &mutated);
            assert_eq!(
                status_and_code(&app, &forged).await,
                (403, Some("signature_invalid".into())),
                "sig changed at {position}: {forged}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 86);
    // Shortened, lengthened, emptied.
    for bad in [&sig[..42], &format!("{sig}A"), ""] {
        let forged = replace_param(&url, "sig", bad);
        assert_eq!(status_and_code(&app, &forged).await.0, 403, "{forged}");
    }
    assert_eq!(status_and_code(&app, &url).await, (200, None));
    app.stop().await;
}

#[tokio::test]
async fn an_expired_signed_url_is_403() {
    let app = TestApp::spawn().await;
    let file = private_file(&app, "soon gone").await;
    let url = app
        .signed_url(file["id"].as_str().unwrap(), json!({ "expires_in": 1 }))
        .await;
    let exp: u64 = query_param(&url, "exp").parse().unwrap();
    // Past `exp` by a whole second, so no clock rounding lets it through.
    while unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_refused(&app, &url, "signature_expired").await;
    app.stop().await;
}

#[tokio::test]
async fn any_change_to_a_signed_url_is_403() {
    let app = TestApp::spawn().await;
    let file = private_file(&app, "mine").await;
    let other = private_file(&app, "theirs").await;
    let id = file["id"].as_str().unwrap();
    let url = app
        .signed_url(
            id,
            json!({ "expires_in": 600, "disposition": "attachment", "filename": "a.txt" }),
        )
        .await;
    assert_eq!(status_and_code(&app, &url).await, (200, None));
    let exp: u64 = query_param(&url, "exp").parse().unwrap();
    let sig = query_param(&url, "sig");

    let forgeries: Vec<(&str, String)> = vec![
        ("unknown kid", replace_param(&url, "kid", "k2")),
        (
            "another file's path",
            url.replace(id, other["id"].as_str().unwrap()),
        ),
        ("an added parameter", format!("{url}&x=1")),
        ("an added response parameter", format!("{url}&download=1")),
        ("a repeated exp", format!("{url}&exp={exp}")),
        ("a repeated kid", format!("{url}&kid=k1")),
        ("a repeated sig", format!("{url}&sig={sig}")),
        (
            "a repeated disposition",
            format!("{url}&disposition=attachment"),
        ),
        (
            "a changed disposition",
            replace_param(&url, "disposition", "inline"),
        ),
        (
            "a changed filename",
            replace_param(&url, "filename", "b.txt"),
        ),
        (
            "a later exp",
            replace_param(&url, "exp", &(exp + 1).to_string()),
        ),
        (
            "an earlier exp",
            replace_param(&url, "exp", &(exp - 1).to_string()),
        ),
        (
            "a dropped disposition",
            url.replace("disposition=attachment&", ""),
        ),
    ];
    for (what, forged) in &forgeries {
        assert_ne!(forged, &url, "{what}");
        let (status, code) = status_and_code(&app, forged).await;
        assert_eq!(status, 403, "{what}: {forged}");
        assert_eq!(code.as_deref(), Some("signature_invalid"), "{what}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_signature_on_a_public_file_is_refused_not_ignored() {
    let app = TestApp::spawn().await;
    let file = app.upload("open", "open.txt", "public").await;
    let url = file["url"].as_str().unwrap();
    assert_eq!(status_and_code(&app, url).await, (200, None));
    let exp = unix_now() + 600;
    for query in [
        format!("exp={exp}&kid=k1&sig=AAAA"),
        "sig=abc".to_owned(),
        "exp=soon&kid=k1&sig=AAAA".to_owned(),
    ] {
        let (status, _) = status_and_code(&app, &format!("{url}?{query}")).await;
        assert_eq!(status, 403, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn signed_responses_are_private_to_browsers_and_public_ones_immutable() {
    let app = TestApp::spawn().await;
    let private = private_file(&app, "p").await;
    let public = app.upload("q", "q.txt", "public").await;
    let private_id = private["id"].as_str().unwrap();
    let public_id = public["id"].as_str().unwrap();

    let url = app
        .signed_url(private_id, json!({ "expires_in": 300 }))
        .await;
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    let max_age = |value: &str, prefix: &str| -> u64 {
        value
            .strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{value:?} starts with {prefix:?}"))
    };
    let browser = max_age(one_header(headers, "cache-control"), "private, max-age=");
    assert!((290..=300).contains(&browser), "{browser}");
    let edge_value = one_header(headers, "cdn-cache-control");
    let edge = edge_value
        .split("max-age=")
        .nth(1)
        .and_then(|n| n.split(',').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a max-age in CDN-Cache-Control: {edge_value}"));
    assert!(
        edge <= 300,
        "the edge never outlives the signature: {edge_value}"
    );
    assert_eq!(one_header(headers, "surrogate-key"), private_id);

    let response = app
        .client
        .get(public["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(one_header(response.headers(), "cache-control"), IMMUTABLE);
    assert_eq!(one_header(response.headers(), "surrogate-key"), public_id);
    app.stop().await;
}

#[tokio::test]
async fn signed_url_lifetimes_are_capped_at_seven_days() {
    let app = TestApp::spawn().await;
    let file = private_file(&app, "capped").await;
    let id = file["id"].as_str().unwrap();
    let path = format!("/v1/files/{id}/signed-url");
    let week = 7 * 24 * 3600;
    for expires_in in [week + 1, 0, 10 * week] {
        let response = app
            .api(Method::POST, &path)
            .json(&json!({ "expires_in": expires_in }))
            .send()
            .await
            .unwrap();
        let (_, code) = expect_error(response, 422).await;
        assert_eq!(code, "invalid_expires_in", "{expires_in}");
    }
    let url = app.signed_url(id, json!({ "expires_in": week })).await;
    assert_eq!(status_and_code(&app, &url).await, (200, None));

    // A URL made with the right key but living past the cap is refused at delivery too.
    let signer = Signer::from_spec(SIGNING_KEYS).unwrap();
    let scope = file_scope(&FileId::parse(id).unwrap());
    let query = signer.sign(&scope, &[], unix_now() + week + 3600);
    let (status, _) =
        status_and_code(&app, &format!("{}?{query}", file["url"].as_str().unwrap())).await;
    assert_eq!(status, 403);

    for (body, status) in [
        (json!({ "expires_in": 60, "extra": true }), 400),
        (json!({ "expires_in": "soon" }), 400),
    ] {
        let response = app
            .api(Method::POST, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, status).await;
    }
    app.stop().await;
}

const NEW_KEY: &str = "new:new-secret-0123456789abcdef";
const OLD_KEY: &str = "old:old-secret-fedcba9876543210";

fn url_signed_with(app: &TestApp, file: &Value, spec: &str) -> String {
    let signer = Signer::from_spec(spec).unwrap();
    let scope = file_scope(&FileId::parse(file["id"].as_str().unwrap()).unwrap());
    let query = signer.sign(&scope, &[], unix_now() + 600);
    format!(
        "{}?{query}",
        app.url(&format!("/files/{}", file["id"].as_str().unwrap()))
    )
}

#[tokio::test]
async fn a_rotated_out_key_verifies_while_it_is_listed() {
    let app = TestApp::spawn_with(|config| {
        config.signing_keys = Some(reelay::config::Secret(format!("{NEW_KEY},{OLD_KEY}")));
    })
    .await;
    let file = private_file(&app, "rotated").await;
    let old_url = url_signed_with(&app, &file, OLD_KEY);
    assert_eq!(query_param(&old_url, "kid"), "old");
    assert_eq!(status_and_code(&app, &old_url).await, (200, None));

    // The first listed key signs what the API hands out.
    let issued = app
        .signed_url(file["id"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(query_param(&issued, "kid"), "new");
    assert_eq!(status_and_code(&app, &issued).await, (200, None));
    app.stop().await;
}

#[tokio::test]
async fn a_key_no_longer_listed_does_not_verify() {
    let app = TestApp::spawn_with(|config| {
        config.signing_keys = Some(reelay::config::Secret(NEW_KEY.into()));
    })
    .await;
    let file = private_file(&app, "rotated").await;
    let old_url = url_signed_with(&app, &file, OLD_KEY);
    assert_refused(&app, &old_url, "signature_invalid").await;
    // A key id that is listed but with another secret fails too.
    let forged = url_signed_with(&app, &file, "new:not-the-real-secret-000");
    assert_refused(&app, &forged, "signature_invalid").await;
    assert_eq!(
        status_and_code(&app, &url_signed_with(&app, &file, NEW_KEY)).await,
        (200, None)
    );
    app.stop().await;
}
