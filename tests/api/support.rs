//! Helpers shared by the api test modules: raw HTTP/1.1 over a TcpStream (for requests reqwest
//! would normalize or refuse), JSON error checks, streamed hashing and multipart bodies.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use reqwest::{header::HeaderMap, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long any raw exchange may take before the test fails instead of hanging.
pub const RAW_DEADLINE: Duration = Duration::from_secs(20);

/// A response read off the wire, with the body de-chunked when it was chunked.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The bytes exactly as received after the head (before de-chunking).
    pub raw_body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the `{ "error": { "code", "message" } }` shape and returns the code.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error without a JSON content type: {self:?}"
        );
        error_shape(&self.json())
    }
}

/// Parses a complete response out of `bytes`, or `None` while more is needed. A response
/// without a length is complete only at EOF (`eof`).
fn parse_response(bytes: &[u8], eof: bool, head_request: bool) -> Option<RawResponse> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).expect("response head is ASCII");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line with a colon");
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let rest = &bytes[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let no_body = head_request || status == 304 || status == 204 || (100..200).contains(&status);
    let body = if no_body {
        // Anything after the head would be a protocol violation; keep it to assert on.
        if !eof {
            return None;
        }
        rest.to_vec()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else {
        if !eof {
            return None;
        }
        rest.to_vec()
    };
    Some(RawResponse {
        status,
        headers,
        body,
        raw_body: rest.to_vec(),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// What happened to a raw exchange.
#[derive(Debug)]
pub enum RawOutcome {
    Response(RawResponse),
    /// The server closed (or reset) the connection without a complete response.
    Closed {
        received: Vec<u8>,
    },
}

impl RawOutcome {
    pub fn response(self) -> RawResponse {
        match self {
            RawOutcome::Response(r) => r,
            RawOutcome::Closed { received } => panic!(
                "connection closed without a response; got {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// Reads until a complete response has arrived, the server closes, or the deadline passes.
pub async fn read_response(stream: &mut TcpStream, head_request: bool) -> RawOutcome {
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return match parse_response(&received, true, head_request) {
                        Some(r) => RawOutcome::Response(r),
                        None => RawOutcome::Closed {
                            received: received.clone(),
                        },
                    };
                }
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if let Some(r) = parse_response(&received, false, head_request) {
                        return RawOutcome::Response(r);
                    }
                }
            }
        }
    };
    tokio::time::timeout(RAW_DEADLINE, read)
        .await
        .expect("the server answered within the deadline")
}

/// Sends `request` exactly as given and reads the answer. Add `Connection: close` to requests
/// whose answers have no length (HEAD, 304).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawOutcome {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("request written");
    let head_request = request.starts_with(b"HEAD ");
    read_response(&mut stream, head_request).await
}

/// A GET (or other method) with the given headers, `Connection: close` added.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    raw(addr, request.as_bytes()).await.response()
}

/// Sends `head` and then `body` from a separate task, so a server that answers before it has
/// read the whole body (a 413, a 400 after a few parts) is heard even while we still write.
pub async fn raw_with_body(addr: SocketAddr, head: String, body: Vec<u8>) -> RawOutcome {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
        }
        // Keep the write half open: closing it could look like a client that gave up.
        std::future::pending::<()>().await;
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return match parse_response(&received, true, false) {
                        Some(r) => RawOutcome::Response(r),
                        None => RawOutcome::Closed {
                            received: received.clone(),
                        },
                    };
                }
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if let Some(r) = parse_response(&received, false, false) {
                        return RawOutcome::Response(r);
                    }
                }
            }
        }
    };
    let outcome = tokio::time::timeout(RAW_DEADLINE, read)
        .await
        .expect("the server answered within the deadline");
    writing.abort();
    outcome
}

/// Asserts `{ "error": { "code": "...", "message": "..." } }` and nothing else; returns the code.
pub fn error_shape(json: &Value) -> String {
    let object = json.as_object().expect("error body is an object");
    assert_eq!(object.len(), 1, "only `error` at the top: {json}");
    let error = object["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "error has exactly code and message: {json}");
    let code = error["code"].as_str().expect("code is a string");
    let message = error["message"].as_str().expect("message is a string");
    assert!(!code.is_empty() && !message.is_empty(), "{json}");
    code.to_owned()
}

/// Asserts the status and the JSON error shape of a reqwest response; returns the headers
/// and the error code.
pub async fn expect_error(response: Response, status: u16) -> (HeaderMap, String) {
    let headers = response.headers().clone();
    let actual = response.status();
    let body = response.bytes().await.expect("error body");
    assert_eq!(
        actual,
        StatusCode::from_u16(status).unwrap(),
        "body: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error without a JSON content type"
    );
    let json: Value = serde_json::from_slice(&body).expect("error body is JSON");
    let code = error_shape(&json);
    (headers, code)
}

/// The one value of a header, failing when it is absent or repeated.
pub fn one_header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    let values: Vec<_> = headers.get_all(name).iter().collect();
    assert_eq!(
        values.len(),
        1,
        "expected one {name} header, got {values:?}"
    );
    values[0].to_str().expect("visible ASCII header")
}

/// Streams a body and returns its length and SHA-256, never holding more than a chunk.
pub async fn stream_sha256(mut response: Response) -> (u64, String) {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = response.chunk().await.expect("body chunk") {
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (len, hex::encode(hasher.finalize()))
}

/// One part of a multipart/form-data body.
pub struct Part<'a> {
    /// The whole Content-Disposition value, e.g. `form-data; name="file"; filename="a.txt"`.
    pub disposition: String,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

impl<'a> Part<'a> {
    pub fn field(name: &str, data: &'a [u8]) -> Self {
        Self {
            disposition: format!("form-data; name=\"{name}\""),
            content_type: None,
            data,
        }
    }

    pub fn file(filename: &str, content_type: Option<&'a str>, data: &'a [u8]) -> Self {
        Self {
            disposition: format!("form-data; name=\"file\"; filename=\"{filename}\""),
            content_type,
            data,
        }
    }
}

pub const BOUNDARY: &str = "reelay-test-boundary-7d1f";

pub fn multipart_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// The bytes that open a part (boundary line and part headers).
pub fn part_head(part: &Part) -> Vec<u8> {
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Disposition: {}\r\n",
        part.disposition
    );
    if let Some(ct) = part.content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

pub fn multipart_tail() -> Vec<u8> {
    format!("--{BOUNDARY}--\r\n").into_bytes()
}

/// A complete multipart/form-data body with [`BOUNDARY`].
pub fn multipart_body(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend(part_head(part));
        out.extend_from_slice(part.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend(multipart_tail());
    out
}

/// Matches the server's id grammar: `fil_` and 20 of `[0-9a-z]`.
pub fn is_file_id(s: &str) -> bool {
    s.strip_prefix("fil_").is_some_and(|rest| {
        rest.len() == 20
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Nothing under the objects dir (temp files included) and no row in the catalog.
pub async fn assert_nothing_stored(app: &crate::common::TestApp) {
    let leftovers = app.stored().await;
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    let response = app
        .api(reqwest::Method::GET, "/v1/files")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"], serde_json::json!([]), "no row may remain");
    assert_eq!(page["next_cursor"], Value::Null);
}
