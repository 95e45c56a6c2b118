//! Conditional requests on delivery, evaluated in RFC 9110 §13.2.2 order: If-Match, then
//! If-Unmodified-Since, then If-None-Match, then If-Modified-Since, then If-Range (strong
//! comparison). A 304 beats a Range; a 412 is a JSON error; a 304 carries the validators and
//! cache headers and no body.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    common::{pattern, TestApp},
    support::{raw_request, RawResponse},
};

const LEN: usize = 1000;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes first..=last.
    Partial(usize, usize),
    NotModified,
    Failed,
}

struct Fixture {
    app: TestApp,
    bytes: Vec<u8>,
    file: Value,
    etag: String,
    last_modified: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let bytes = pattern(31, LEN);
    let file = app.upload(bytes.clone(), "cond.bin", "public").await;
    let response = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", file["sha256"].as_str().unwrap()),
        "strong ETag from the SHA-256"
    );
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    Fixture {
        app,
        bytes,
        file,
        etag,
        last_modified,
    }
}

impl Fixture {
    fn path(&self) -> String {
        format!("/files/{}", self.file["id"].as_str().unwrap())
    }

    /// Last-Modified moved by `seconds`, as an HTTP-date.
    fn shifted(&self, seconds: i64) -> String {
        let lm =
            httpdate::parse_http_date(&self.last_modified).expect("Last-Modified is an HTTP-date");
        let moved = if seconds >= 0 {
            lm + Duration::from_secs(seconds as u64)
        } else {
            lm - Duration::from_secs(seconds.unsigned_abs())
        };
        httpdate::fmt_http_date(moved)
    }

    fn check(&self, name: &str, method: &str, response: &RawResponse, expected: Expect) {
        let expected_status = match expected {
            Expect::Full => 200,
            Expect::Partial(..) => 206,
            Expect::NotModified => 304,
            Expect::Failed => 412,
        };
        assert_eq!(response.status, expected_status, "{name}: {response:?}");
        let head = method == "HEAD";
        match expected {
            Expect::Full => {
                assert_eq!(response.header("content-length"), Some("1000"), "{name}");
                assert_eq!(response.header("content-range"), None, "{name}");
                if !head {
                    assert_eq!(response.body, self.bytes, "{name}");
                }
            }
            Expect::Partial(first, last) => {
                assert_eq!(
                    response.header("content-range"),
                    Some(format!("bytes {first}-{last}/{LEN}").as_str()),
                    "{name}"
                );
                assert_eq!(response.body, &self.bytes[first..=last], "{name}");
            }
            Expect::NotModified => {
                assert_eq!(response.header("etag"), Some(self.etag.as_str()), "{name}");
                assert_eq!(response.header("cache-control"), Some(IMMUTABLE), "{name}");
                assert_eq!(
                    response.header("last-modified"),
                    Some(self.last_modified.as_str()),
                    "{name}"
                );
                assert_eq!(
                    response.header("surrogate-key"),
                    self.file["id"].as_str(),
                    "{name}"
                );
                assert_eq!(response.header("content-range"), None, "{name}");
                assert!(response.raw_body.is_empty(), "{name}: a 304 has no body");
            }
            Expect::Failed => {
                if head {
                    assert!(response.raw_body.is_empty(), "{name}: HEAD has no body");
                } else {
                    assert_eq!(response.error_code(), "precondition_failed", "{name}");
                }
            }
        }
    }
}

/// (row name, method, request headers, expected outcome)
type Row<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, Expect);

#[tokio::test]
async fn preconditions_follow_rfc_9110_section_13_2_2() {
    let f = fixture().await;
    let e = f.etag.clone();
    let weak = format!("W/{e}");
    let other = "\"0000000000000000\"".to_owned();
    let lm = f.last_modified.clone();
    let past = f.shifted(-86_400);
    let future = f.shifted(86_400);
    let list_with_current = format!("\"aaa\", {e}");
    let range = ("Range", "bytes=0-9".to_owned());
    use Expect::*;

    let table: Vec<Row> = vec![
        // §13.1.1 If-Match: strong comparison; `*` matches any current representation.
        (
            "if-match current",
            "GET",
            vec![("If-Match", e.clone())],
            Full,
        ),
        ("if-match star", "GET", vec![("If-Match", "*".into())], Full),
        (
            "if-match list with current",
            "GET",
            vec![("If-Match", list_with_current.clone())],
            Full,
        ),
        (
            "if-match other",
            "GET",
            vec![("If-Match", other.clone())],
            Failed,
        ),
        (
            "if-match weak current",
            "GET",
            vec![("If-Match", weak.clone())],
            Failed,
        ),
        (
            "if-match other with range",
            "GET",
            vec![("If-Match", other.clone()), range.clone()],
            Failed,
        ),
        // §13.1.4 If-Unmodified-Since, only without If-Match.
        (
            "if-unmodified-since lm",
            "GET",
            vec![("If-Unmodified-Since", lm.clone())],
            Full,
        ),
        (
            "if-unmodified-since future",
            "GET",
            vec![("If-Unmodified-Since", future.clone())],
            Full,
        ),
        (
            "if-unmodified-since past",
            "GET",
            vec![("If-Unmodified-Since", past.clone())],
            Failed,
        ),
        (
            "if-unmodified-since invalid date is ignored",
            "GET",
            vec![("If-Unmodified-Since", "yesterday".into())],
            Full,
        ),
        (
            "if-match wins over if-unmodified-since",
            "GET",
            vec![
                ("If-Match", e.clone()),
                ("If-Unmodified-Since", past.clone()),
            ],
            Full,
        ),
        // §13.1.2 If-None-Match: weak comparison; `*` matches.
        (
            "if-none-match current",
            "GET",
            vec![("If-None-Match", e.clone())],
            NotModified,
        ),
        (
            "if-none-match weak current",
            "GET",
            vec![("If-None-Match", weak.clone())],
            NotModified,
        ),
        (
            "if-none-match star",
            "GET",
            vec![("If-None-Match", "*".into())],
            NotModified,
        ),
        (
            "if-none-match list with current",
            "GET",
            vec![("If-None-Match", list_with_current.clone())],
            NotModified,
        ),
        (
            "if-none-match other",
            "GET",
            vec![("If-None-Match", other.clone())],
            Full,
        ),
        (
            "if-none-match current on head",
            "HEAD",
            vec![("If-None-Match", e.clone())],
            NotModified,
        ),
        // §13.1.3 If-Modified-Since, only without If-None-Match.
        (
            "if-modified-since lm",
            "GET",
            vec![("If-Modified-Since", lm.clone())],
            NotModified,
        ),
        (
            "if-modified-since past",
            "GET",
            vec![("If-Modified-Since", past.clone())],
            Full,
        ),
        (
            "if-modified-since invalid date is ignored",
            "GET",
            vec![("If-Modified-Since", "soon".into())],
            Full,
        ),
        (
            "if-none-match overrides if-modified-since",
            "GET",
            vec![
                ("If-None-Match", other.clone()),
                ("If-Modified-Since", lm.clone()),
            ],
            Full,
        ),
        // §13.2.2 order across fields.
        (
            "if-match passes then if-none-match gives 304",
            "GET",
            vec![("If-Match", e.clone()), ("If-None-Match", e.clone())],
            NotModified,
        ),
        (
            "failing if-match beats if-none-match",
            "GET",
            vec![("If-Match", other.clone()), ("If-None-Match", e.clone())],
            Failed,
        ),
        (
            "failing if-unmodified-since beats if-none-match",
            "GET",
            vec![
                ("If-Unmodified-Since", past.clone()),
                ("If-None-Match", e.clone()),
            ],
            Failed,
        ),
        (
            "failing if-match on head",
            "HEAD",
            vec![("If-Match", other.clone())],
            Failed,
        ),
        // 304 beats Range (§13.2.2 step 5 comes after 3 and 4).
        (
            "if-none-match beats range",
            "GET",
            vec![("If-None-Match", e.clone()), range.clone()],
            NotModified,
        ),
        (
            "if-modified-since beats range",
            "GET",
            vec![("If-Modified-Since", lm.clone()), range.clone()],
            NotModified,
        ),
        // §13.1.5 If-Range: strong comparison of an entity-tag, exact match of a date.
        (
            "if-range current strong tag",
            "GET",
            vec![("If-Range", e.clone()), range.clone()],
            Partial(0, 9),
        ),
        (
            "if-range weak tag",
            "GET",
            vec![("If-Range", weak.clone()), range.clone()],
            Full,
        ),
        (
            "if-range stale tag",
            "GET",
            vec![("If-Range", other.clone()), range.clone()],
            Full,
        ),
        (
            "if-range last-modified date",
            "GET",
            vec![("If-Range", lm.clone()), range.clone()],
            Partial(0, 9),
        ),
        (
            "if-range earlier date",
            "GET",
            vec![("If-Range", past.clone()), range.clone()],
            Full,
        ),
        (
            "if-range without range",
            "GET",
            vec![("If-Range", e.clone())],
            Full,
        ),
        (
            "no precondition with range",
            "GET",
            vec![range.clone()],
            Partial(0, 9),
        ),
    ];

    let path = f.path();
    for (name, method, headers, expected) in &table {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = raw_request(f.app.addr, method, &path, &headers).await;
        f.check(name, method, &response, *expected);
    }
    f.app.stop().await;
}

#[tokio::test]
async fn a_304_of_a_signed_url_keeps_the_signed_cache_headers() {
    let app = TestApp::spawn().await;
    let file = app.upload("secret", "s.txt", "private").await;
    let id = file["id"].as_str().unwrap();
    let url = app.signed_url(id, json!({ "expires_in": 600 })).await;
    let first = app.client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let target = url.strip_prefix(&app.base).unwrap();
    let response = raw_request(app.addr, "GET", target, &[("If-None-Match", &etag)]).await;
    assert_eq!(response.status, 304);
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    let cache = response
        .header("cache-control")
        .expect("Cache-Control on a 304");
    assert!(cache.starts_with("private, max-age="), "{cache}");
    assert!(response.header("cdn-cache-control").is_some());
    assert!(response.raw_body.is_empty());
    app.stop().await;
}
