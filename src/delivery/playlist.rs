//! Carrying a viewer's token through manifests. A private media is signed once for its whole
//! path prefix; when a manifest is served under such a signature, every URI it references gets
//! the same `exp`/`kid`/`sig` query, so a stock player (hls.js, dash.js, Safari, ExoPlayer)
//! needs nothing else to fetch renditions and segments.

/// Appends `query` to every URI of an HLS playlist (RFC 8216): URI lines and `URI="..."`
/// attributes (EXT-X-MAP, EXT-X-MEDIA, EXT-X-I-FRAME-STREAM-INF, ...).
pub fn sign_m3u8(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in playlist.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if trimmed.starts_with('#') {
            out.push_str(&sign_attribute(line, "URI=\"", query, "&"));
        } else {
            out.push_str(&with_query(trimmed, query, "&"));
        }
        out.push('\n');
    }
    out
}

/// Appends `query` to the URL-bearing attributes and elements of a DASH MPD (ISO/IEC 23009-1):
/// SegmentTemplate `media` and `initialization`, `sourceURL`, `mediaRange`-free `media`, and
/// `<BaseURL>`. The query is XML-escaped.
pub fn sign_mpd(mpd: &str, query: &str) -> String {
    let mut out = mpd.to_owned();
    for attribute in ["media=\"", "initialization=\"", "sourceURL=\""] {
        out = sign_attribute(&out, attribute, query, "&amp;");
    }
    sign_element(&out, "BaseURL", query)
}

fn with_query(uri: &str, query: &str, amp: &str) -> String {
    let separator = if uri.contains('?') { amp } else { "?" };
    format!("{uri}{separator}{}", query.replace('&', amp))
}

/// Rewrites every `attr"value"` occurrence (attr includes the opening quote).
fn sign_attribute(text: &str, attr: &str, query: &str, amp: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find(attr) {
        // Match whole attribute names only: `media="` must not match `xmedia="`.
        let boundary = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let value_start = at + attr.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        let Some(end) = rest.find('"') else { break };
        if boundary && end > 0 {
            out.push_str(&with_query(&rest[..end], query, amp));
        } else {
            out.push_str(&rest[..end]);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn sign_element(text: &str, name: &str, query: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let value_start = at + open.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        let Some(end) = rest.find(&close) else { break };
        out.push_str(&with_query(rest[..end].trim(), query, "&amp;"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "exp=1&kid=k1&sig=abc";

    #[test]
    fn every_uri_of_a_master_playlist_carries_the_token() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"media_2.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001f\"\nmedia_0.m3u8\n";
        let signed = sign_m3u8(master, Q);
        assert!(
            signed.contains("URI=\"media_2.m3u8?exp=1&kid=k1&sig=abc\""),
            "{signed}"
        );
        assert!(
            signed.contains("\nmedia_0.m3u8?exp=1&kid=k1&sig=abc\n"),
            "{signed}"
        );
        assert!(
            signed.contains("CODECS=\"avc1.64001f\""),
            "attributes other than URI stay"
        );
    }

    #[test]
    fn media_playlists_sign_the_map_and_every_segment() {
        let media = "#EXTM3U\n#EXT-X-MAP:URI=\"init-0.m4s\"\n#EXTINF:4.0,\nseg-0-00001.m4s\n#EXTINF:2.0,\nseg-0-00002.m4s\n#EXT-X-ENDLIST\n";
        let signed = sign_m3u8(media, Q);
        assert_eq!(signed.matches("sig=abc").count(), 3, "{signed}");
        assert!(signed.contains("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn a_uri_with_a_query_gets_an_ampersand() {
        assert_eq!(
            sign_m3u8("a.m4s?x=1", Q),
            "a.m4s?x=1&exp=1&kid=k1&sig=abc\n"
        );
    }

    #[test]
    fn mpd_templates_and_base_urls_carry_the_escaped_token() {
        let mpd = r#"<MPD><BaseURL>./</BaseURL><SegmentTemplate timescale="1" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></MPD>"#;
        let signed = sign_mpd(mpd, Q);
        assert!(
            signed.contains(
                r#"initialization="init-$RepresentationID$.m4s?exp=1&amp;kid=k1&amp;sig=abc""#
            ),
            "{signed}"
        );
        assert!(
            signed.contains(
                r#"media="seg-$RepresentationID$-$Number%05d$.m4s?exp=1&amp;kid=k1&amp;sig=abc""#
            ),
            "{signed}"
        );
        assert!(
            signed.contains("<BaseURL>./?exp=1&amp;kid=k1&amp;sig=abc</BaseURL>"),
            "{signed}"
        );
        assert!(signed.contains(r#"timescale="1""#));
    }

    #[test]
    fn attribute_names_match_whole_words_only() {
        let mpd = r#"<X mimeType="video/mp4" xmedia="keep" media="m.m4s"/>"#;
        let signed = sign_mpd(mpd, Q);
        assert!(signed.contains(r#"xmedia="keep""#), "{signed}");
        assert!(signed.contains(r#"media="m.m4s?exp=1"#), "{signed}");
    }
}
