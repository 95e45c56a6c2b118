//! Helpers for the media suite: waiting on media, raw HTTP for paths reqwest would normalize,
//! ffmpeg/ffprobe as a player and a measuring tool, and small HLS/DASH parsers.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use reqwest::{Client, Response, Url};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::ADMIN_KEY;

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GET with the admin key; returns the status and the JSON body.
pub async fn api_get(client: &Client, url: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "GET {url}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, json)
}

/// What was seen of one media while waiting for it.
#[derive(Debug, Clone)]
pub struct Followed {
    pub last: Value,
    /// Every (state, progress) observed, in order, without repeats.
    pub history: Vec<(String, u64)>,
    /// False when the bound passed before the media was ready or failed.
    pub terminal: bool,
}

pub fn is_terminal(media: &Value) -> bool {
    matches!(media["state"].as_str(), Some("ready" | "failed"))
}

/// Polls `GET /v1/media/{id}` until the media is ready or failed, or `bound` passes.
pub async fn follow_media(client: &Client, base: &str, id: &str, bound: Duration) -> Followed {
    let deadline = Instant::now() + bound;
    let mut history: Vec<(String, u64)> = Vec::new();
    loop {
        let (status, media) = api_get(client, &format!("{base}/v1/media/{id}")).await;
        assert_eq!(status, 200, "GET /v1/media/{id}: {media}");
        let seen = (
            media["state"].as_str().unwrap_or("?").to_owned(),
            media["progress"].as_u64().unwrap_or(u64::MAX),
        );
        if history.last() != Some(&seen) {
            history.push(seen);
        }
        if is_terminal(&media) || Instant::now() >= deadline {
            return Followed {
                terminal: is_terminal(&media),
                last: media,
                history,
            };
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits for one media and insists it ends ready.
pub async fn wait_ready(client: &Client, base: &str, id: &str) -> Value {
    let followed = follow_media(client, base, id, Duration::from_secs(180)).await;
    assert_eq!(
        followed.last["state"], "ready",
        "media {id} did not become ready: {}",
        followed.last
    );
    followed.last
}

/// A GET that must answer 200; returns the body.
pub async fn get_ok(client: &Client, url: &str) -> Vec<u8> {
    let response = client.get(url).send().await.expect("request sent");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    assert_eq!(
        status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    body.to_vec()
}

pub async fn get_text(client: &Client, url: &str) -> String {
    String::from_utf8(get_ok(client, url).await).expect("UTF-8 manifest")
}

/// Asserts the status and the `{ "error": { "code", "message" } }` shape; returns the headers
/// and the code.
pub async fn expect_error(response: Response, status: u16) -> (reqwest::header::HeaderMap, String) {
    let url = response.url().to_string();
    let headers = response.headers().clone();
    let actual = response.status().as_u16();
    let body = response.bytes().await.expect("error body");
    assert_eq!(
        actual,
        status,
        "{url}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "{url}: an error without a JSON content type"
    );
    let json: Value = serde_json::from_slice(&body).expect("error body is JSON");
    (headers, error_code(&json))
}

/// Checks `{ "error": { "code": "...", "message": "..." } }` and nothing else; returns the code.
pub fn error_code(json: &Value) -> String {
    let object = json.as_object().expect("error body is an object");
    assert_eq!(object.len(), 1, "only `error` at the top: {json}");
    let error = object["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "error has exactly code and message: {json}");
    let code = error["code"].as_str().expect("code is a string");
    let message = error["message"].as_str().expect("message is a string");
    assert!(!code.is_empty() && !message.is_empty(), "{json}");
    code.to_owned()
}

pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `max-age` of a Cache-Control value.
pub fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: requests exactly as written (reqwest would resolve `..` and re-encode).

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` with `Connection: close` and reads the answer to EOF.
pub async fn raw_get(addr: SocketAddr, target: &str) -> RawResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request written");
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    };
    let received = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("the server answered within 20 s");
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response to {target:?}: {:?}",
                String::from_utf8_lossy(&received)
            )
        });
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &received[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ffmpeg and ffprobe.

/// What a decode of a URL with ffmpeg showed.
#[derive(Debug)]
pub struct Decoded {
    pub success: bool,
    /// ffmpeg's errors (`-v error`): empty for a clean decode.
    pub stderr: String,
    /// How far the decode got, from ffmpeg's own `-progress` output.
    pub seconds: f64,
}

/// `ffmpeg -v error -i <url> -map 0 -f null -`: decodes every stream of `url` to the end.
pub async fn ffmpeg_decode(url: &str) -> Decoded {
    let mut command = tokio::process::Command::new("ffmpeg");
    command
        .args(["-nostdin", "-hide_banner", "-v", "error", "-nostats"])
        .args([
            "-progress",
            "pipe:1",
            "-i",
            url,
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ])
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("ffmpeg decoding {url} took over 120 s"))
        .expect("ffmpeg runs");
    let progress = String::from_utf8_lossy(&output.stdout);
    let seconds = progress
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    Decoded {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        seconds,
    }
}

/// `ffprobe -of json` with `args` on a local file; panics unless it succeeds.
pub async fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .kill_on_drop(true)
        .output()
        .await
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// The first packets of a fragment, decoded through its init segment: (pts seconds, keyframe).
pub async fn fragment_packets(init: &[u8], segment: &[u8], stream: &str) -> Vec<(f64, bool)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fragment.mp4");
    std::fs::write(&path, [init, segment].concat()).expect("fragment written");
    let json = ffprobe_json(
        &path,
        &[
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,flags",
        ],
    )
    .await;
    json["packets"]
        .as_array()
        .map(|packets| {
            packets
                .iter()
                .map(|p| {
                    let pts = p["pts_time"]
                        .as_str()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(f64::NAN);
                    let key = p["flags"].as_str().is_some_and(|f| f.contains('K'));
                    (pts, key)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first stream of a local file as ffprobe sees it.
pub async fn first_stream(path: &Path, select: &str) -> Value {
    let json = ffprobe_json(path, &["-select_streams", select, "-show_streams"]).await;
    json["streams"][0].clone()
}

// ---------------------------------------------------------------------------------------------
// HLS (RFC 8216) and DASH, as far as the suite reads them.

/// An attribute list (`A=1,B="x,y"`) as name -> value, quotes removed.
pub fn attributes(list: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("closing quote");
            value = quoted[..end].to_owned();
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        out.insert(name, value);
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub attrs: BTreeMap<String, String>,
    pub uri: String,
}

#[derive(Debug, Clone)]
pub struct Master {
    pub variants: Vec<Variant>,
    /// `EXT-X-MEDIA` tags.
    pub media: Vec<BTreeMap<String, String>>,
}

impl Master {
    /// Every media playlist it names: variants first, then renditions with a URI.
    pub fn playlists(&self) -> Vec<String> {
        let mut out: Vec<String> = self.variants.iter().map(|v| v.uri.clone()).collect();
        out.extend(self.media.iter().filter_map(|m| m.get("URI").cloned()));
        out
    }
}

pub fn parse_master(text: &str) -> Master {
    assert!(text.starts_with("#EXTM3U"), "not a playlist: {text}");
    let mut variants = Vec::new();
    let mut media = Vec::new();
    let mut pending: Option<BTreeMap<String, String>> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(list) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            pending = Some(attributes(list));
        } else if let Some(list) = line.strip_prefix("#EXT-X-MEDIA:") {
            media.push(attributes(list));
        } else if !line.starts_with('#') {
            let attrs = pending
                .take()
                .unwrap_or_else(|| panic!("URI {line} without EXT-X-STREAM-INF in {text}"));
            variants.push(Variant {
                attrs,
                uri: line.to_owned(),
            });
        }
    }
    Master { variants, media }
}

#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    pub map: String,
    /// (EXTINF seconds, URI)
    pub segments: Vec<(f64, String)>,
    pub ended: bool,
    pub target_duration: Option<u64>,
}

impl MediaPlaylist {
    /// Where each segment starts, and where the last one ends.
    pub fn boundaries(&self) -> Vec<f64> {
        let mut at = 0.0;
        let mut out = vec![0.0];
        for (duration, _) in &self.segments {
            at += duration;
            out.push(at);
        }
        out
    }

    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|(d, _)| d).sum()
    }
}

pub fn parse_media_playlist(text: &str) -> MediaPlaylist {
    assert!(text.starts_with("#EXTM3U"), "not a playlist: {text}");
    let mut map = None;
    let mut segments = Vec::new();
    let mut pending = None;
    let mut ended = false;
    let mut target_duration = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(list) = line.strip_prefix("#EXT-X-MAP:") {
            map = attributes(list).get("URI").cloned();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let seconds = v.split(',').next().unwrap_or_default();
            pending = Some(
                seconds
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad EXTINF {line}")),
            );
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target_duration = v.parse().ok();
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.starts_with('#') {
            let duration = pending
                .take()
                .unwrap_or_else(|| panic!("segment {line} without EXTINF"));
            segments.push((duration, line.to_owned()));
        }
    }
    MediaPlaylist {
        map: map.unwrap_or_else(|| panic!("no EXT-X-MAP in {text}")),
        segments,
        ended,
        target_duration,
    }
}

/// Every URI an HLS playlist references: URI lines and `URI="..."` attributes.
pub fn playlist_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            let mut rest = line;
            while let Some(at) = rest.find("URI=\"") {
                let value = &rest[at + 5..];
                let end = value.find('"').expect("closing quote");
                out.push(value[..end].to_owned());
                rest = &value[end..];
            }
        } else {
            out.push(line.to_owned());
        }
    }
    out
}

/// `uri` resolved against the URL of the document that names it.
pub fn resolve(base: &str, uri: &str) -> String {
    Url::parse(base)
        .and_then(|b| b.join(uri))
        .unwrap_or_else(|e| panic!("cannot resolve {uri:?} against {base}: {e}"))
        .to_string()
}

/// Every `<name .../>` or `<name ...>` start tag of an XML text, as its attribute text.
pub fn xml_tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let boundary = after
            .chars()
            .next()
            .is_some_and(|c| c.is_whitespace() || c == '>' || c == '/');
        let end = after.find('>').expect("tag end");
        if boundary {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

/// The raw (still XML-escaped) value of attribute `name` in a start tag's attribute text.
pub fn xml_attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut rest = tag;
    while let Some(at) = rest.find(&needle) {
        let boundary = at == 0 || rest.as_bytes()[at - 1].is_ascii_whitespace();
        let value = &rest[at + needle.len()..];
        let end = value.find('"')?;
        if boundary {
            return Some(value[..end].to_owned());
        }
        rest = &value[end..];
    }
    None
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One representation of an MPD with the files its SegmentTemplate/SegmentTimeline name.
#[derive(Debug, Clone)]
pub struct DashRepresentation {
    pub id: String,
    pub bandwidth: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub codecs: Option<String>,
    /// Unescaped initialization URI, then every media segment URI, as the template expands.
    pub init: String,
    pub segments: Vec<String>,
}

/// Reads the representations of an MPD written as ffmpeg's dash muxer writes it: one
/// SegmentTemplate (with a SegmentTimeline) per representation or per adaptation set.
pub fn parse_mpd(xml: &str) -> Vec<DashRepresentation> {
    let mut out = Vec::new();
    // Split on adaptation sets so a template at set level applies to its representations.
    for set in xml.split("<AdaptationSet").skip(1) {
        let set = set.split("</AdaptationSet>").next().unwrap_or(set);
        let set_template = set
            .split("<Representation")
            .next()
            .and_then(|head| xml_tags(head, "SegmentTemplate").first().copied())
            .map(str::to_owned);
        let set_timeline = set.split("<Representation").next().map(timeline);
        let set_codecs = xml_attr(set.split('>').next().unwrap_or(""), "codecs");
        for rep in set.split("<Representation").skip(1) {
            let tag = rep.split('>').next().unwrap_or("");
            let id = xml_attr(tag, "id").expect("Representation id");
            let own_template = xml_tags(rep, "SegmentTemplate")
                .first()
                .map(|t| t.to_string());
            let template = own_template
                .clone()
                .or_else(|| set_template.clone())
                .expect("a SegmentTemplate");
            let counts = if own_template.is_some() {
                timeline(rep)
            } else {
                set_timeline.clone().unwrap_or_default()
            };
            let start: u64 = xml_attr(&template, "startNumber")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let init =
                xml_unescape(&xml_attr(&template, "initialization").expect("initialization"));
            let media = xml_unescape(&xml_attr(&template, "media").expect("media template"));
            let segments = (0..counts.len() as u64)
                .map(|i| expand(&media, &id, start + i, counts[i as usize]))
                .collect();
            out.push(DashRepresentation {
                bandwidth: xml_attr(tag, "bandwidth").and_then(|v| v.parse().ok()),
                width: xml_attr(tag, "width").and_then(|v| v.parse().ok()),
                height: xml_attr(tag, "height").and_then(|v| v.parse().ok()),
                codecs: xml_attr(tag, "codecs").or_else(|| set_codecs.clone()),
                init: expand(&init, &id, 0, 0),
                segments,
                id,
            });
        }
    }
    out
}

/// The start time of every segment a SegmentTimeline lists (`<S t= d= r=>`).
fn timeline(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut t = 0u64;
    for s in xml_tags(text, "S") {
        if let Some(start) = xml_attr(s, "t").and_then(|v| v.parse().ok()) {
            t = start;
        }
        let d: u64 = xml_attr(s, "d").and_then(|v| v.parse().ok()).expect("S@d");
        let r: i64 = xml_attr(s, "r").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(r >= 0, "open-ended S@r in a VOD manifest");
        for _ in 0..=r {
            out.push(t);
            t += d;
        }
    }
    out
}

/// Expands `$RepresentationID$`, `$Number$`/`$Number%0Nd$` and `$Time$` in a template.
fn expand(template: &str, id: &str, number: u64, time: u64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('$').expect("closing $");
        let ident = &after[..end];
        let (name, format) = ident.split_once('%').unwrap_or((ident, ""));
        let value = match name {
            "RepresentationID" => id.to_owned(),
            "Number" => number.to_string(),
            "Time" => time.to_string(),
            "" => "$".to_owned(),
            other => panic!("unknown template identifier {other}"),
        };
        let width: usize = format
            .trim_start_matches('0')
            .trim_end_matches('d')
            .parse()
            .unwrap_or(0);
        out.push_str(&format!("{value:0>width$}"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every file a ready media's manifests reference, by path under `/media/{id}/`, with the HLS
/// master and media playlists, the MPD, their segments and (when listed) the poster.
pub async fn media_files(client: &Client, media: &Value) -> BTreeSet<String> {
    let master_url = media["hls_url"].as_str().expect("hls_url");
    let base = master_url
        .rsplit_once('/')
        .map(|(b, _)| format!("{b}/"))
        .unwrap();
    let mut files = BTreeSet::new();
    files.insert("master.m3u8".to_owned());
    files.insert("manifest.mpd".to_owned());
    let master = parse_master(&get_text(client, master_url).await);
    for playlist in master.playlists() {
        files.insert(playlist.clone());
        let media_playlist =
            parse_media_playlist(&get_text(client, &format!("{base}{playlist}")).await);
        files.insert(media_playlist.map.clone());
        files.extend(media_playlist.segments.iter().map(|(_, uri)| uri.clone()));
    }
    let mpd = get_text(client, media["dash_url"].as_str().expect("dash_url")).await;
    for rep in parse_mpd(&mpd) {
        files.insert(rep.init);
        files.extend(rep.segments);
    }
    if media["poster_url"].is_string() {
        files.insert("poster.jpg".to_owned());
    }
    files
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An RFC 3339 time from a JSON answer.
pub fn rfc3339(value: &Value) -> time::OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lists_keep_quoted_commas() {
        let attrs = attributes(r#"BANDWIDTH=1,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=2x2"#);
        assert_eq!(attrs["CODECS"], "avc1.64001f,mp4a.40.2");
        assert_eq!(attrs["RESOLUTION"], "2x2");
        assert_eq!(attrs["BANDWIDTH"], "1");
    }

    #[test]
    fn templates_expand_numbers_with_padding() {
        assert_eq!(
            expand("seg-$RepresentationID$-$Number%05d$.m4s?a=1&b=2", "3", 7, 0),
            "seg-3-00007.m4s?a=1&b=2"
        );
        assert_eq!(
            expand("init-$RepresentationID$.m4s", "0", 0, 0),
            "init-0.m4s"
        );
    }

    #[test]
    fn timelines_repeat() {
        let xml = r#"<SegmentTimeline><S t="0" d="10" r="2" /><S d="5" /></SegmentTimeline>"#;
        assert_eq!(timeline(xml), vec![0, 10, 20, 30]);
    }
}
