//! The one response builder for downloads: preconditions, then the range policy, then headers
//! and a streamed body. Every download path (files, media) goes through `respond`.

use std::{ops::Range, time::SystemTime};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::{
    cache::{CachePolicy, SURROGATE_KEY},
    conditional::{self, Precondition, Validators},
    range::{self, ByteRange, RangeRequest},
};
use crate::{
    error::ApiError,
    storage::{ByteStream, DynStorage, ObjectKey, StorageError},
};

/// Sandboxes user content: an uploaded HTML or SVG file can never run as our page.
pub const USER_CONTENT_CSP: &str = "default-src 'none'; sandbox";

/// Where the bytes come from: storage, or (for small generated bodies such as playlists that
/// carry a viewer's token) memory.
#[derive(Clone)]
pub enum Source {
    Storage { storage: DynStorage, key: ObjectKey },
    Memory(Bytes),
}

impl Source {
    pub fn storage(storage: DynStorage, key: ObjectKey) -> Self {
        Source::Storage { storage, key }
    }

    async fn open(&self, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        match self {
            Source::Storage { storage, key } => storage.get(key, range).await,
            Source::Memory(bytes) => {
                let bytes = match range {
                    Some(r) => bytes.slice(r.start as usize..r.end as usize),
                    None => bytes.clone(),
                };
                Ok(stream::once(async { Ok(bytes) }).boxed())
            }
        }
    }
}

/// Everything about what is served except its bytes; answering HEAD, 304 and 412 needs no
/// storage call.
#[derive(Debug, Clone)]
pub struct Representation {
    pub size: u64,
    /// Strong entity tag with quotes.
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: String,
    pub content_disposition: Option<HeaderValue>,
    pub cache: CachePolicy,
    pub surrogate_key: String,
}

pub async fn respond(
    method: &Method,
    request: &HeaderMap,
    rep: &Representation,
    source: Source,
) -> Result<Response, ApiError> {
    let validators = Validators {
        etag: &rep.etag,
        last_modified: rep.last_modified,
    };
    let honor_range = match conditional::evaluate(method, request, &validators) {
        Precondition::Proceed { honor_range } => honor_range,
        Precondition::NotModified => return Ok(not_modified(rep)),
        Precondition::PreconditionFailed => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "a precondition in the request headers does not hold",
            ))
        }
    };
    let ranges = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if honor_range => range::parse_range(value, rep.size),
        _ => RangeRequest::Full,
    };

    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    representation_headers(rep, headers);
    let head_only = method == Method::HEAD;

    match ranges {
        RangeRequest::Full => {
            headers.insert(header::CONTENT_TYPE, header_value(&rep.content_type));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rep.size));
            if !head_only && rep.size > 0 {
                *response.body_mut() = body(open(&source, None, rep).await?);
            }
        }
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("no requested range lies within the {} bytes", rep.size),
            )
            .with_header(
                header::CONTENT_RANGE,
                header_value(&range::unsatisfied_content_range(rep.size)),
            ));
        }
        RangeRequest::Partial(parts) if parts.len() == 1 => {
            let part = parts[0];
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, header_value(&rep.content_type));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(part.len));
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&part.content_range(rep.size)),
            );
            if !head_only {
                let stream = open(&source, Some(span(part)), rep).await?;
                *response.body_mut() = body(stream);
            }
        }
        RangeRequest::Partial(parts) => {
            let multipart = Multipart::new(&rep.content_type, rep.size, &parts);
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header_value(&multipart.content_type()),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(multipart.len()));
            if !head_only {
                *response.body_mut() = body(multipart.into_stream(source));
            }
        }
    }
    Ok(response)
}

/// Opens the body. The catalog said the content exists, so storage not having it is an
/// inconsistency to log; the client gets the ordinary delivery 404.
async fn open(
    source: &Source,
    range: Option<Range<u64>>,
    rep: &Representation,
) -> Result<ByteStream, ApiError> {
    match source.open(range).await {
        Err(StorageError::NotFound) => {
            tracing::error!(subject = %rep.surrogate_key, "the catalog lists content storage does not have");
            Err(super::not_found())
        }
        other => Ok(other?),
    }
}

fn span(r: ByteRange) -> Range<u64> {
    r.start..r.start + r.len
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn body(stream: ByteStream) -> Body {
    Body::from_stream(stream.inspect_ok(|chunk| {
        metrics::counter!("reelay_delivered_bytes_total").increment(chunk.len() as u64)
    }))
}

fn representation_headers(rep: &Representation, headers: &mut HeaderMap) {
    headers.insert(header::ETAG, header_value(&rep.etag));
    headers.insert(
        header::LAST_MODIFIED,
        header_value(&httpdate::fmt_http_date(rep.last_modified)),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    rep.cache.apply(headers);
    headers.insert(SURROGATE_KEY.clone(), header_value(&rep.surrogate_key));
    if let Some(disposition) = &rep.content_disposition {
        headers.insert(header::CONTENT_DISPOSITION, disposition.clone());
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(USER_CONTENT_CSP),
    );
}

/// RFC 9110 §15.4.5: a 304 carries the validators and cache headers a 200 would have had.
fn not_modified(rep: &Representation) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(&rep.etag));
    headers.insert(
        header::LAST_MODIFIED,
        header_value(&httpdate::fmt_http_date(rep.last_modified)),
    );
    rep.cache.apply(headers);
    headers.insert(SURROGATE_KEY.clone(), header_value(&rep.surrogate_key));
    response
}

/// A `multipart/byteranges` body (RFC 9110 §14.6) whose length is known before any byte is read.
struct Multipart {
    boundary: String,
    segments: Vec<Segment>,
}

enum Segment {
    Literal(Bytes),
    Range(Range<u64>),
}

impl Multipart {
    fn new(content_type: &str, total: u64, parts: &[ByteRange]) -> Self {
        let boundary = crate::ids::random_secret(18).replace(['-', '_'], "0");
        let mut segments = Vec::with_capacity(parts.len() * 2 + 1);
        for (i, part) in parts.iter().enumerate() {
            let lead = if i == 0 { "" } else { "\r\n" };
            segments.push(Segment::Literal(Bytes::from(format!(
                "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                part.content_range(total)
            ))));
            segments.push(Segment::Range(span(*part)));
        }
        segments.push(Segment::Literal(Bytes::from(format!(
            "\r\n--{boundary}--\r\n"
        ))));
        Self { boundary, segments }
    }

    fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(b) => b.len() as u64,
                Segment::Range(r) => r.end - r.start,
            })
            .sum()
    }

    /// Opens each range only when the previous part has been sent.
    fn into_stream(self, source: Source) -> ByteStream {
        stream::iter(self.segments)
            .then(move |segment| {
                let source = source.clone();
                async move {
                    match segment {
                        Segment::Literal(bytes) => Ok(stream::once(async { Ok(bytes) }).boxed()),
                        Segment::Range(r) => {
                            source.open(Some(r)).await.map_err(std::io::Error::other)
                        }
                    }
                }
            })
            .try_flatten()
            .boxed()
    }
}
