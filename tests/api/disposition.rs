//! Content-Disposition on delivery (RFC 6266 with RFC 8187 `filename*`): hostile names never
//! break the header, `filename*` carries the stored name exactly, the ASCII fallback is plain
//! printable ASCII, and the inline/attachment default follows the content type.

use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    common::TestApp,
    support::{expect_error, multipart_body, multipart_content_type, one_header, Part},
};

/// A parsed header: the lowercased disposition type and its parameters in order.
#[derive(Debug)]
struct Disposition {
    kind: String,
    params: Vec<(String, String)>,
}

impl Disposition {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6266 §4.1: `disposition-type *( OWS ";" OWS disposition-parm )`, each parameter a
/// token or a quoted-string (RFC 9110 §5.6.4), no parameter twice.
fn parse_disposition(value: &str) -> Result<Disposition, String> {
    let b = value.as_bytes();
    let mut i = 0;
    let ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> Result<String, String> {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        if start == *i {
            return Err(format!("token expected at {start} in {value:?}"));
        }
        Ok(value[start..*i].to_owned())
    };
    let kind = token(&mut i)?.to_ascii_lowercase();
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        ows(&mut i);
        if i == b.len() {
            break;
        }
        if b[i] != b';' {
            return Err(format!("';' expected at {i} in {value:?}"));
        }
        i += 1;
        ows(&mut i);
        let name = token(&mut i)?.to_ascii_lowercase();
        if b.get(i) != Some(&b'=') {
            return Err(format!("'=' expected after {name} in {value:?}"));
        }
        i += 1;
        let param = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut out = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quoted-string in {value:?}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let escaped = *b.get(i + 1).ok_or("dangling quoted-pair")?;
                        if !(escaped == b'\t' || (0x20..0x7f).contains(&escaped)) {
                            return Err(format!("bad quoted-pair in {value:?}"));
                        }
                        out.push(escaped);
                        i += 2;
                    }
                    // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E (obs-text is refused here:
                    // the fallback must be ASCII).
                    Some(&c) if c == b'\t' || (0x20..0x7f).contains(&c) => {
                        out.push(c);
                        i += 1;
                    }
                    Some(c) => return Err(format!("byte {c:#x} in quoted-string of {value:?}")),
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())?
        } else {
            token(&mut i)?
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(format!("parameter {name} repeated in {value:?}"));
        }
        params.push((name, param));
    }
    Ok(Disposition { kind, params })
}

/// RFC 8187 §3.2.1 `attr-char`.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// RFC 8187 `ext-value = charset "'" [ language ] "'" value-chars`, UTF-8 only.
fn decode_ext_value(value: &str) -> Result<String, String> {
    let (charset, rest) = value.split_once('\'').ok_or("no charset")?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return Err(format!("charset {charset}"));
    }
    let (_language, chars) = rest.split_once('\'').ok_or("no language delimiter")?;
    let b = chars.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = chars.get(i + 1..i + 3).ok_or("short pct-encoding")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else if is_attr_char(b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return Err(format!("{:?} is not an attr-char", b[i] as char));
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Printable ASCII a naive parser or a file system cannot misread.
fn is_safe_fallback(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| (c.is_ascii_graphic() || c == ' ') && !"\"\\/%;,".contains(c))
}

fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// What every stored name satisfies, whatever was uploaded.
fn assert_stored_name_is_safe(stored: &str, uploaded: &str) {
    assert!(!stored.is_empty(), "{uploaded:?}");
    assert!(
        stored.chars().count() <= 255,
        "{uploaded:?} stored as {stored:?}"
    );
    assert!(
        !stored.starts_with('.'),
        "{uploaded:?} stored as {stored:?}"
    );
    assert!(
        !stored
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\' || is_bidi_or_invisible(c)),
        "{uploaded:?} stored as {stored:?}"
    );
}

/// Downloads `url` and checks its Content-Disposition against `kind` and `name`; returns the
/// fallback.
async fn assert_disposition(app: &TestApp, url: &str, kind: &str, name: &str) -> String {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a header was injected"
    );
    let value = one_header(response.headers(), "content-disposition").to_owned();
    let parsed = parse_disposition(&value).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.kind, kind, "{value}");
    let names: Vec<&str> = parsed.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["filename", "filename*"], "{value}");
    let exact = decode_ext_value(parsed.param("filename*").unwrap()).unwrap();
    assert_eq!(exact, name, "filename* of {value}");
    let fallback = parsed.param("filename").unwrap().to_owned();
    assert!(
        is_safe_fallback(&fallback),
        "fallback {fallback:?} of {value}"
    );
    // An ASCII extension survives in the fallback, so a saved file still opens.
    if let Some((_, ext)) = name.rsplit_once('.') {
        if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()) {
            assert!(
                fallback.ends_with(&format!(".{ext}")),
                "{fallback:?} keeps .{ext}"
            );
        }
    }
    fallback
}

fn hostile_names() -> Vec<String> {
    vec![
        "say \"hi\".txt".into(),
        "semi;colon.txt".into(),
        "comma,name.txt".into(),
        "dir\\file.txt".into(),
        "C:\\Windows\\evil.bat".into(),
        "evil\r\nSet-Cookie: a=b.txt".into(),
        "nul\0byte.txt".into(),
        "tab\there.txt".into(),
        "../../etc/passwd".into(),
        "..\\..\\boot.ini".into(),
        "invoice\u{202E}fdp.exe".into(),
        "\u{1F389} party \u{1F600}.png".into(),
        "r\u{e9}sum\u{e9} na\u{ef}ve.pdf".into(),
        "100% real.txt".into(),
        "%2e%2e%2fetc%0d%0a.txt".into(),
        "=?utf-8?B?ZXZpbC5odG1s?=.txt".into(),
        "trailing dot and space. ".into(),
        format!("{}.pdf", "x".repeat(300)),
        format!("{}.txt", "\u{00e9}".repeat(400)),
    ]
}

/// Exact stored names where the rule is unambiguous: control and bidi characters go, quotes,
/// `;`, `,`, `%` and non-ASCII stay in the stored name (they are encoded on the way out).
fn expected_stored(uploaded: &str) -> Option<String> {
    let exact = match uploaded {
        "say \"hi\".txt" | "semi;colon.txt" | "comma,name.txt" | "100% real.txt" => uploaded,
        "%2e%2e%2fetc%0d%0a.txt" | "=?utf-8?B?ZXZpbC5odG1s?=.txt" => uploaded,
        "\u{1F389} party \u{1F600}.png" | "r\u{e9}sum\u{e9} na\u{ef}ve.pdf" => uploaded,
        "evil\r\nSet-Cookie: a=b.txt" => "evilSet-Cookie: a=b.txt",
        "nul\0byte.txt" => "nulbyte.txt",
        "tab\there.txt" => "tabhere.txt",
        "invoice\u{202E}fdp.exe" => "invoicefdp.exe",
        _ => return None,
    };
    Some(exact.to_owned())
}

async fn upload_raw_named(app: &TestApp, name: &str) -> Value {
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", name), ("access", "public")])
        .header("content-type", "text/plain")
        .body("named")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{name:?}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn hostile_raw_upload_filenames_give_one_parseable_header_with_the_stored_name() {
    let app = TestApp::spawn().await;
    for name in hostile_names() {
        let file = upload_raw_named(&app, &name).await;
        let stored = file["filename"]
            .as_str()
            .expect("a name is left")
            .to_owned();
        assert_stored_name_is_safe(&stored, &name);
        if let Some(expected) = expected_stored(&name) {
            assert_eq!(stored, expected, "{name:?}");
        }
        if name.ends_with(".pdf") && name.len() > 300 {
            assert!(
                stored.ends_with(".pdf") && stored.chars().count() == 255,
                "{stored:?}"
            );
        }
        let url = file["url"].as_str().unwrap();
        assert_disposition(&app, url, "attachment", &stored).await;
        // Any trailing name in the path changes nothing.
        assert_disposition(
            &app,
            &format!("{url}/other%22name.html"),
            "attachment",
            &stored,
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn hostile_multipart_filenames_are_stored_and_served_like_raw_ones() {
    let app = TestApp::spawn().await;
    for name in hostile_names() {
        let raw = upload_raw_named(&app, &name).await;
        let expressible = !name.chars().any(|c| c.is_control());
        // A part header cannot hold CR, LF or NUL; those names travel in the `filename` field.
        let part = if expressible {
            let quoted = name.replace('"', "\\\"");
            Part {
                disposition: format!("form-data; name=\"file\"; filename=\"{quoted}\""),
                content_type: Some("text/plain"),
                data: b"named",
            }
        } else {
            Part::file("ignored.bin", Some("text/plain"), b"named")
        };
        let mut parts = vec![part, Part::field("access", b"public")];
        if !expressible {
            parts.push(Part::field("filename", name.as_bytes()));
        }
        let response = app
            .api(Method::POST, "/v1/files")
            .header("content-type", multipart_content_type())
            .body(multipart_body(&parts))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let file: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{name:?}: {file}");
        assert_eq!(file["filename"], raw["filename"], "{name:?}");
        let stored = file["filename"].as_str().unwrap();
        assert_disposition(&app, file["url"].as_str().unwrap(), "attachment", stored).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_name_with_nothing_usable_left_is_served_under_the_file_id() {
    let app = TestApp::spawn().await;
    for name in ["..", "\r\n", "\u{202E}\u{200B}", " . . "] {
        let file = upload_raw_named(&app, name).await;
        assert_eq!(file["filename"], Value::Null, "{name:?}");
        let id = file["id"].as_str().unwrap();
        let fallback =
            assert_disposition(&app, file["url"].as_str().unwrap(), "attachment", id).await;
        assert_eq!(fallback, id);
    }
    app.stop().await;
}

#[tokio::test]
async fn media_and_raster_images_are_inline_and_everything_else_an_attachment() {
    let app = TestApp::spawn().await;
    let table = [
        ("video/mp4", "clip.mp4", "inline"),
        ("audio/mpeg", "song.mp3", "inline"),
        ("image/png", "pic.png", "inline"),
        ("image/jpeg", "pic.jpg", "inline"),
        ("text/html", "page.html", "attachment"),
        ("image/svg+xml", "logo.svg", "attachment"),
        ("application/pdf", "doc.pdf", "attachment"),
        ("text/plain", "notes.txt", "attachment"),
        ("application/json", "data.json", "attachment"),
        ("application/octet-stream", "blob.bin", "attachment"),
    ];
    for (content_type, name, kind) in table {
        let response = app
            .api(Method::POST, "/v1/files")
            .query(&[("filename", name), ("access", "public")])
            .header("content-type", content_type)
            .body("typed")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let file: Value = response.json().await.unwrap();
        assert_eq!(file["content_type"], content_type);
        assert_disposition(&app, file["url"].as_str().unwrap(), kind, name).await;
    }
    app.stop().await;
}

async fn upload_typed(app: &TestApp, content_type: &str, name: &str, access: &str) -> Value {
    let response = app
        .api(Method::POST, "/v1/files")
        .query(&[("filename", name), ("access", access)])
        .header("content-type", content_type)
        .body("typed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn signed_urls_choose_the_disposition_and_filename() {
    let app = TestApp::spawn().await;
    let pdf = upload_typed(&app, "application/pdf", "report.pdf", "private").await;
    let png = upload_typed(&app, "image/png", "photo.png", "private").await;
    let pdf_id = pdf["id"].as_str().unwrap();
    let png_id = png["id"].as_str().unwrap();

    let url = app
        .signed_url(pdf_id, json!({ "disposition": "inline" }))
        .await;
    assert_disposition(&app, &url, "inline", "report.pdf").await;

    let url = app
        .signed_url(
            png_id,
            json!({ "disposition": "attachment", "filename": "holiday 2024 \u{1F334}.png" }),
        )
        .await;
    assert_disposition(&app, &url, "attachment", "holiday 2024 \u{1F334}.png").await;

    // Without a disposition the type's default applies, with the signed name.
    let url = app
        .signed_url(png_id, json!({ "filename": "renamed.png" }))
        .await;
    assert_disposition(&app, &url, "inline", "renamed.png").await;

    // A hostile signed filename is sanitized like an uploaded one.
    let hostile = "../\u{202E}evil\r\n.html";
    let url = app
        .signed_url(
            pdf_id,
            json!({ "disposition": "attachment", "filename": hostile }),
        )
        .await;
    let response = app.client.get(&url).send().await.unwrap();
    let value = one_header(response.headers(), "content-disposition").to_owned();
    let exact = decode_ext_value(
        parse_disposition(&value)
            .unwrap()
            .param("filename*")
            .unwrap(),
    )
    .unwrap();
    assert_stored_name_is_safe(&exact, hostile);
    assert!(exact.ends_with("evil.html"), "{exact:?}");
    app.stop().await;
}

#[tokio::test]
async fn signing_refuses_an_unknown_disposition_or_an_empty_filename_with_422() {
    let app = TestApp::spawn().await;
    let file = upload_typed(&app, "application/pdf", "report.pdf", "private").await;
    let path = format!("/v1/files/{}/signed-url", file["id"].as_str().unwrap());
    for (body, code) in [
        (json!({ "disposition": "download" }), "invalid_disposition"),
        (
            json!({ "disposition": "inline; filename=x.html" }),
            "invalid_disposition",
        ),
        (json!({ "filename": "\r\n" }), "invalid_filename"),
        (json!({ "filename": "..." }), "invalid_filename"),
        (
            json!({ "filename": "\u{202E}\u{200B}" }),
            "invalid_filename",
        ),
    ] {
        let response = app
            .api(Method::POST, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (_, actual) = expect_error(response, 422).await;
        assert_eq!(actual, code, "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unsigned_disposition_and_filename_parameters_are_ignored() {
    let app = TestApp::spawn().await;
    let file = upload_typed(&app, "text/html", "page.html", "public").await;
    let url = format!(
        "{}?disposition=inline&filename=index.html",
        file["url"].as_str().unwrap()
    );
    assert_disposition(&app, &url, "attachment", "page.html").await;
    app.stop().await;
}
