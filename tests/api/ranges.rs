//! Range requests on delivery (RFC 9110 §14, DESIGN.md "Header policy for delivery"): one
//! range is a 206, up to eight ascending ones a multipart/byteranges, anything else the whole
//! body, and nothing satisfiable a 416 with `Content-Range: bytes */len`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{
    common::{pattern, TestApp},
    support::{expect_error, one_header, raw_request},
};

const LEN: usize = 1000;

struct Fixture {
    app: TestApp,
    bytes: Vec<u8>,
    file: Value,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let bytes = pattern(21, LEN);
    let file = app.upload(bytes.clone(), "data.bin", "public").await;
    Fixture { app, bytes, file }
}

impl Fixture {
    fn url(&self) -> &str {
        self.file["url"].as_str().unwrap()
    }

    fn path(&self) -> String {
        format!("/files/{}", self.file["id"].as_str().unwrap())
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.file["sha256"].as_str().unwrap())
    }

    async fn get(&self, range: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.url())
            .header("range", range)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn single_ranges_are_answered_206_with_exact_bytes_and_content_range() {
    let f = fixture().await;
    // (Range, first byte, last byte) per RFC 9110 §14.1.2, clamped to the length.
    let table: [(&str, usize, usize); 8] = [
        ("bytes=0-0", 0, 0),
        ("bytes=-10", 990, 999),
        ("bytes=990-5000", 990, 999),
        ("bytes=500-", 500, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=0-999", 0, 999),
        ("bytes=999-999", 999, 999),
        ("bytes=10-19", 10, 19),
    ];
    for (range, first, last) in table {
        let response = f.get(range).await;
        assert_eq!(response.status(), 206, "{range}");
        let headers = response.headers().clone();
        assert_eq!(
            one_header(&headers, "content-range"),
            format!("bytes {first}-{last}/{LEN}"),
            "{range}"
        );
        assert_eq!(
            one_header(&headers, "content-length"),
            (last - first + 1).to_string(),
            "{range}"
        );
        assert_eq!(
            one_header(&headers, "content-type"),
            "application/octet-stream"
        );
        assert_eq!(one_header(&headers, "accept-ranges"), "bytes");
        assert_eq!(one_header(&headers, "etag"), f.etag());
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &f.bytes[first..=last], "{range}");
    }
    f.app.stop().await;
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416_with_the_length_and_a_json_error() {
    let f = fixture().await;
    for range in [
        "bytes=1000-",
        "bytes=5000-6000",
        "bytes=-0",
        "bytes=1000-1000,2000-",
    ] {
        let response = f.get(range).await;
        let (headers, code) = expect_error(response, 416).await;
        assert_eq!(code, "range_not_satisfiable", "{range}");
        assert_eq!(
            one_header(&headers, "content-range"),
            "bytes */1000",
            "{range}"
        );
    }
    f.app.stop().await;
}

#[tokio::test]
async fn ranges_the_server_cannot_use_give_the_whole_body_with_200() {
    let f = fixture().await;
    for range in [
        "bytes=0-10,5-20",
        "bytes=100-199,0-9",
        "bytes=0-499,-600",
        "bytes=10-5",
        "items=0-1",
        "bytes=",
        "bytes=0-1,x",
        // Nine ranges: more than the eight served as multipart.
        "bytes=0-0,10-10,20-20,30-30,40-40,50-50,60-60,70-70,80-80",
    ] {
        let response = f.get(range).await;
        assert_eq!(response.status(), 200, "{range}");
        assert!(response.headers().get("content-range").is_none(), "{range}");
        assert_eq!(
            one_header(response.headers(), "content-length"),
            LEN.to_string()
        );
        assert_eq!(
            &response.bytes().await.unwrap()[..],
            &f.bytes[..],
            "{range}"
        );
    }
    f.app.stop().await;
}

#[tokio::test]
async fn a_thousand_ranges_get_the_whole_body_with_200_fast() {
    let f = fixture().await;
    let specs: Vec<String> = (0..1000).map(|i| format!("{i}-{i}")).collect();
    let header = format!("bytes={}", specs.join(","));
    let started = Instant::now();
    let response = f.get(&header).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-range").is_none());
    assert_eq!(&response.bytes().await.unwrap()[..], &f.bytes[..]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    f.app.stop().await;
}

/// One part of a multipart/byteranges body.
#[derive(Debug)]
struct BytePart {
    content_type: String,
    content_range: String,
    data: Vec<u8>,
}

/// A strict reader of RFC 9110 §14.6: each part is a delimiter line, headers, a blank line
/// and exactly as many bytes as its Content-Range names; the body ends with the close
/// delimiter.
fn parse_byteranges(body: &[u8], boundary: &str) -> Vec<BytePart> {
    let mut rest = body;
    let mut parts = Vec::new();
    let delimiter = format!("--{boundary}");
    loop {
        let lead: &[u8] = if parts.is_empty() { b"" } else { b"\r\n" };
        rest = rest
            .strip_prefix(lead)
            .and_then(|r| r.strip_prefix(delimiter.as_bytes()))
            .unwrap_or_else(|| panic!("delimiter expected at {:?}", String::from_utf8_lossy(rest)));
        if let Some(after) = rest.strip_prefix(b"--") {
            assert_eq!(after, b"\r\n", "nothing but CRLF after the close delimiter");
            return parts;
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .expect("CRLF after the delimiter");
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let head = std::str::from_utf8(&rest[..end]).expect("ASCII part headers");
        rest = &rest[end + 4..];
        let mut content_type = None;
        let mut content_range = None;
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').expect("header line");
            match name.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(value.trim().to_owned()),
                "content-range" => content_range = Some(value.trim().to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_range = content_range.expect("each part has a Content-Range");
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(span, _)| span.split_once('-'))
            .expect("bytes first-last/len");
        let len = last.parse::<usize>().unwrap() - first.parse::<usize>().unwrap() + 1;
        parts.push(BytePart {
            content_type: content_type.expect("each part has a Content-Type"),
            content_range,
            data: rest[..len].to_vec(),
        });
        rest = &rest[len..];
    }
}

async fn multipart_ranges(f: &Fixture, range: &str) -> Vec<BytePart> {
    let response = f.get(range).await;
    assert_eq!(response.status(), 206, "{range}");
    let headers = response.headers().clone();
    assert!(
        headers.get("content-range").is_none(),
        "no top-level Content-Range"
    );
    let content_type = one_header(&headers, "content-type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("multipart/byteranges, got {content_type}"))
        .trim_matches('"')
        .to_owned();
    assert!(!boundary.is_empty());
    let declared: usize = one_header(&headers, "content-length").parse().unwrap();
    assert_eq!(one_header(&headers, "etag"), f.etag());
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), declared, "Content-Length is the body's length");
    parse_byteranges(&body, &boundary)
}

#[tokio::test]
async fn three_ranges_come_back_as_multipart_byteranges() {
    let f = fixture().await;
    let parts = multipart_ranges(&f, "bytes=0-9,100-199,-10").await;
    let expected = [(0, 9), (100, 199), (990, 999)];
    assert_eq!(parts.len(), expected.len(), "{parts:?}");
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(part.content_type, "application/octet-stream");
        assert_eq!(part.content_range, format!("bytes {first}-{last}/{LEN}"));
        assert_eq!(part.data, &f.bytes[first..=last]);
    }
    f.app.stop().await;
}

#[tokio::test]
async fn eight_ascending_ranges_are_the_most_served_as_multipart() {
    let f = fixture().await;
    let parts = multipart_ranges(
        &f,
        "bytes=0-0,10-19,20-29,300-300,400-449,500-500,600-600,900-",
    )
    .await;
    let expected = [
        (0, 0),
        (10, 19),
        (20, 29),
        (300, 300),
        (400, 449),
        (500, 500),
        (600, 600),
        (900, 999),
    ];
    assert_eq!(parts.len(), 8);
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(part.content_range, format!("bytes {first}-{last}/{LEN}"));
        assert_eq!(part.data, &f.bytes[first..=last]);
    }
    f.app.stop().await;
}

#[tokio::test]
async fn head_with_a_range_is_a_200_with_the_full_length_and_no_body() {
    let f = fixture().await;
    let response = raw_request(
        f.app.addr,
        "HEAD",
        &f.path(),
        &[("Range", "bytes=0-9,20-29")],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("1000"));
    assert_eq!(response.header("content-range"), None);
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.header("etag"), Some(f.etag().as_str()));
    assert!(
        response.raw_body.is_empty(),
        "HEAD sent {} bytes",
        response.raw_body.len()
    );

    let single = raw_request(f.app.addr, "HEAD", &f.path(), &[("Range", "bytes=0-0")]).await;
    assert_eq!(single.status, 200);
    assert_eq!(single.header("content-length"), Some("1000"));
    assert!(single.raw_body.is_empty());
    f.app.stop().await;
}

#[tokio::test]
async fn an_empty_file_answers_any_range_with_416_and_plain_gets_with_an_empty_200() {
    let app = TestApp::spawn().await;
    let file = app.upload(Vec::new(), "empty.bin", "public").await;
    let url = file["url"].as_str().unwrap();
    for range in ["bytes=0-0", "bytes=-5", "bytes=0-"] {
        let response = app
            .client
            .get(url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        let (headers, code) = expect_error(response, 416).await;
        assert_eq!(code, "range_not_satisfiable");
        assert_eq!(
            one_header(&headers, "content-range"),
            "bytes */0",
            "{range}"
        );
    }
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(one_header(response.headers(), "content-length"), "0");
    assert!(response.bytes().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_signed_private_file_serves_ranges_too() {
    let app = TestApp::spawn().await;
    let bytes = pattern(22, 5000);
    let file = app.upload(bytes.clone(), "private.bin", "private").await;
    let url = app
        .signed_url(file["id"].as_str().unwrap(), json!({ "expires_in": 600 }))
        .await;
    let response = app
        .client
        .get(&url)
        .header("range", "bytes=4000-4099")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        one_header(response.headers(), "content-range"),
        "bytes 4000-4099/5000"
    );
    assert_eq!(&response.bytes().await.unwrap()[..], &bytes[4000..4100]);
    app.stop().await;
}
