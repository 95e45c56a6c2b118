//! Content-Disposition: RFC 6266, with the `filename*` extended parameter of RFC 8187.
//!
//! Three rules live here:
//!
//! - [`default_disposition`]: only media a browser renders without running script is served
//!   `inline`. HTML, SVG (which can carry script), PDF, text and everything unknown is an
//!   `attachment`, so an uploaded file can never execute in the service's origin.
//! - [`sanitize_filename`]: a client-supplied name is stored and echoed only after removing
//!   what could break a header, fake a path (RFC 6266 §4.3 asks recipients to drop path
//!   information; senders should not rely on that), or disguise an extension with bidi
//!   overrides and invisible characters (Unicode TR #36 §2, "Visual Security Issues").
//! - [`content_disposition`]: RFC 6266 §4.3 recommends sending `filename` (an ASCII fallback
//!   for old user agents) before `filename*` (exact UTF-8, RFC 8187 §3.2.1), and user agents
//!   that understand `filename*` prefer it.

use http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispositionType {
    Inline,
    Attachment,
}

impl DispositionType {
    /// `disposition-type` is case-insensitive (RFC 6266 §4.2); extension types are not
    /// offered to clients, so they parse as `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim_matches([' ', '\t']);
        if s.eq_ignore_ascii_case("inline") {
            Some(Self::Inline)
        } else if s.eq_ignore_ascii_case("attachment") {
            Some(Self::Attachment)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Attachment => "attachment",
        }
    }
}

/// Raster formats browsers decode as pictures only. SVG is absent on purpose: it is a
/// document that can run script.
const INLINE_IMAGE_SUBTYPES: [&str; 7] = ["png", "jpeg", "gif", "webp", "avif", "bmp", "apng"];

/// `inline` for `video/*`, `audio/*` and the raster images png, jpeg, gif, webp, avif, bmp
/// and apng; `attachment` for everything else, including HTML, SVG, PDF, text, JSON and
/// `application/octet-stream`. Parameters after `;` are ignored; matching is
/// case-insensitive (RFC 9110 §8.3.1).
pub fn default_disposition(content_type: &str) -> DispositionType {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    let Some((kind, subtype)) = essence.split_once('/') else {
        return DispositionType::Attachment;
    };
    // A malformed media type (RFC 9110 §8.3.1) is something we cannot vouch for.
    if !is_token(kind) || !is_token(subtype) {
        return DispositionType::Attachment;
    }
    let inline = kind.eq_ignore_ascii_case("video")
        || kind.eq_ignore_ascii_case("audio")
        || (kind.eq_ignore_ascii_case("image")
            && INLINE_IMAGE_SUBTYPES
                .iter()
                .any(|known| subtype.eq_ignore_ascii_case(known)));
    if inline {
        DispositionType::Inline
    } else {
        DispositionType::Attachment
    }
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Long enough for any real name; a database column and most filesystems hold 255.
const MAX_FILENAME_CHARS: usize = 255;
/// An extension (with its dot) at most this long survives truncation, so `<long>.mp4` stays
/// an `.mp4`; anything longer is not a plausible extension.
const MAX_KEPT_EXTENSION_CHARS: usize = 16;

/// Makes a client-supplied name safe to store and to echo, or `None` when nothing is left.
///
/// Removes control characters (C0, DEL, C1) and invisible or reordering characters (bidi
/// controls, zero-width characters, BOM, tag characters); replaces `/` and `\` with `_`;
/// trims whitespace and leading dots (`../x` becomes `_x`, `...` becomes nothing); caps the
/// result at 255 characters, keeping an extension of up to 16 characters (dot included).
/// Idempotent: a sanitized name sanitizes to itself, so names can be re-sanitized on the way
/// out without drifting.
pub fn sanitize_filename(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_format(c))
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    // Leading dots make hidden files and `..` segments; they are trimmed together with
    // whitespace so " . .x" cannot leave a dot behind and break idempotence.
    let trimmed = cleaned
        .trim_start_matches(|c: char| c.is_whitespace() || c == '.')
        .trim_end();
    if trimmed.is_empty() {
        return None;
    }
    Some(truncate(trimmed))
}

/// Characters that render as nothing or reorder text, so "invoice\u{202E}fdp.exe" cannot
/// display as "invoiceexe.pdf" (Unicode TR #36 §2; CVE-2021-42574 "Trojan Source").
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                      // soft hyphen
        | '\u{061C}'                    // Arabic letter mark
        | '\u{180E}'                    // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space/joiners, LRM, RLM
        | '\u{2028}'..='\u{202E}'       // line/paragraph separators, bidi embeddings/overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'       // bidi isolates, deprecated format controls
        | '\u{FEFF}'                    // zero-width no-break space / BOM
        | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
        | '\u{E0000}'..='\u{E007F}'     // tag characters (invisible ASCII smuggling)
    )
}

fn truncate(name: &str) -> String {
    if name.chars().count() <= MAX_FILENAME_CHARS {
        return name.to_owned();
    }
    let extension = name
        .rfind('.')
        .map(|dot| &name[dot..])
        .filter(|ext| ext.chars().count() <= MAX_KEPT_EXTENSION_CHARS)
        .unwrap_or("");
    let keep = MAX_FILENAME_CHARS - extension.chars().count();
    let cut = name.char_indices().nth(keep).map_or(name.len(), |(i, _)| i);
    // Without an extension the cut may land after a space; trimming keeps the result a
    // fixed point of sanitize_filename.
    let stem = if extension.is_empty() {
        name[..cut].trim_end()
    } else {
        &name[..cut]
    };
    format!("{stem}{extension}")
}

/// Complement of RFC 8187 §3.2.1 `attr-char`: everything else is percent-encoded.
const NOT_ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `<kind>; filename="<ascii fallback>"; filename*=UTF-8''<pct-encoded>` for a name that has
/// passed through [`sanitize_filename`] (`download` when nothing is left of it).
///
/// The fallback turns every character but printable ASCII, and each of `"` `\` `%` `;` `,`,
/// into `_`, one for one. `filename*` percent-encodes every UTF-8 byte that is not an
/// RFC 8187 `attr-char`. Both are visible ASCII, so the value is always a valid header.
pub fn content_disposition(kind: DispositionType, filename: &str) -> HeaderValue {
    let name = sanitize_filename(filename);
    let name = name.as_deref().unwrap_or("download");
    let fallback: String = name
        .chars()
        .map(|c| if is_fallback_safe(c) { c } else { '_' })
        .collect();
    let value = format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        kind.as_str(),
        utf8_percent_encode(name, NOT_ATTR_CHAR),
    );
    HeaderValue::from_str(&value).expect("fallback and pct-encoding leave only visible ASCII")
}

/// Printable ASCII that needs no quoted-pair (RFC 9110 §5.6.4) and that naive parsers cannot
/// mistake for a delimiter (`;`, `,`) or an encoding (`%`, RFC 6266 §4.3 warns about it).
fn is_fallback_safe(c: char) -> bool {
    (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '%' | ';' | ',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::percent_decode_str;

    /// `(disposition-type, [(name, value)])`: a strict reading of RFC 6266 §4.1 so the tests
    /// check what a user agent would see, quoted-pairs included.
    fn parse_header(value: &str) -> (String, Vec<(String, String)>) {
        let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            rest = rest.trim_start_matches(' ');
            let (name, after) = rest.split_once('=').expect("parameter without '='");
            let (param, after) = if let Some(quoted) = after.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next().expect("unterminated quoted-string") {
                        (_, '\\') => out.push(chars.next().expect("dangling quoted-pair").1),
                        (i, '"') => break i + 1,
                        (_, c) => out.push(c),
                    }
                };
                (out, &quoted[end..])
            } else {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            };
            params.push((name.to_ascii_lowercase(), param));
            rest = after.strip_prefix(';').unwrap_or_else(|| {
                assert!(after.is_empty(), "junk after parameter: {after:?}");
                ""
            });
        }
        (kind.to_owned(), params)
    }

    fn is_attr_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
    }

    /// RFC 8187 §3.2.1 `ext-value` with charset UTF-8 and no language.
    fn decode_ext_value(value: &str) -> String {
        let encoded = value.strip_prefix("UTF-8''").expect("charset and language");
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                assert!(
                    bytes.len() > i + 2
                        && bytes[i + 1].is_ascii_hexdigit()
                        && bytes[i + 2].is_ascii_hexdigit(),
                    "bad pct-encoded at {i} in {encoded:?}"
                );
                i += 3;
            } else {
                assert!(is_attr_char(bytes[i]), "not an attr-char: {:?}", bytes[i]);
                i += 1;
            }
        }
        percent_decode_str(encoded)
            .decode_utf8()
            .expect("UTF-8")
            .into_owned()
    }

    fn hostile_names() -> Vec<String> {
        let mut names: Vec<String> = [
            "report.pdf",
            "say \"hi\".txt",
            "a;b.txt",
            "a,b.txt",
            "a\\b.txt",
            "100%.txt",
            "%41.txt",
            "evil\r\nSet-Cookie: x=1.txt",
            "nul\0byte.txt",
            "tab\there.txt",
            "del\u{7f}.txt",
            "c1\u{85}\u{9b}.txt",
            "../etc/passwd",
            "..\\..\\windows\\system32",
            "/absolute/path.txt",
            "invoice\u{202E}fdp.exe",
            "\u{2066}isolate\u{2069}.txt",
            "zero\u{200B}width\u{FEFF}.txt",
            "tag\u{E0041}smuggle.txt",
            "emoji 🎬🍿.mp4",
            "家族 👨\u{200D}👩\u{200D}👧.png",
            "報告書.pdf",
            "Ünïcödé ñame.txt",
            "   spaced   ",
            "...",
            ". . .",
            ".hidden",
            "",
            "\u{202E}\u{200B}\0",
            "filename*=UTF-8''x.txt",
            "x\"; filename=\"evil.exe",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.push(format!("{}.mp4", "a".repeat(300)));
        names.push("é".repeat(400));
        names.push(format!("{}.{}", "b".repeat(300), "x".repeat(40)));
        names.push(format!("{}{}.mov", "c".repeat(250), " ".repeat(20)));
        names.push(format!("{} {}", "d".repeat(254), "e".repeat(10)));
        names
    }

    #[test]
    fn hostile_names_give_valid_headers_that_round_trip() {
        for name in hostile_names() {
            let expected = sanitize_filename(&name).unwrap_or_else(|| "download".to_owned());
            for kind in [DispositionType::Attachment, DispositionType::Inline] {
                let value = content_disposition(kind, &name);
                let text = value.to_str().expect("visible ASCII");
                let (parsed_kind, params) = parse_header(text);
                assert_eq!(DispositionType::parse(&parsed_kind), Some(kind), "{text}");

                let named = |wanted: &str| -> Vec<&String> {
                    params
                        .iter()
                        .filter(|(n, _)| n == wanted)
                        .map(|(_, v)| v)
                        .collect()
                };
                let (fallback, extended) = (named("filename"), named("filename*"));
                assert_eq!(params.len(), 2, "{text}");
                assert_eq!((fallback.len(), extended.len()), (1, 1), "{text}");
                assert_eq!(decode_ext_value(extended[0]), expected, "{name:?}");

                let fallback = fallback[0];
                assert!(!fallback.is_empty(), "{text}");
                assert!(
                    fallback.chars().all(is_fallback_safe),
                    "unsafe fallback {fallback:?}"
                );
                assert_eq!(fallback.chars().count(), expected.chars().count());
            }
        }
    }

    #[test]
    fn plain_ascii_name_is_sent_unchanged_in_both_parameters() {
        let value = content_disposition(DispositionType::Attachment, "report-2024.pdf");
        assert_eq!(
            value,
            "attachment; filename=\"report-2024.pdf\"; filename*=UTF-8''report-2024.pdf"
        );
    }

    #[test]
    fn non_ascii_name_gets_underscored_fallback_and_exact_extended_value() {
        let value = content_disposition(DispositionType::Inline, "naïve café.mp4");
        assert_eq!(
            value,
            "inline; filename=\"na_ve caf_.mp4\"; filename*=UTF-8''na%C3%AFve%20caf%C3%A9.mp4"
        );
    }

    #[test]
    fn nameless_file_is_called_download() {
        let value = content_disposition(DispositionType::Attachment, " ... ");
        assert_eq!(
            value,
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }

    /// One `#[test]` per row so a failure names the rule that broke.
    macro_rules! sanitize_table {
        ($($name:ident: $input:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let expected: Option<String> = $expected;
                assert_eq!(sanitize_filename(&$input), expected, "input {:?}", $input);
            }
        )*};
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    sanitize_table! {
        ordinary_name_is_unchanged: "holiday video.mp4" => some("holiday video.mp4");
        quotes_and_delimiters_are_kept_for_filename_star: "a\"b;c,d%.txt" => some("a\"b;c,d%.txt");
        parent_traversal_cannot_look_like_a_path: "../etc/passwd" => some("_etc_passwd");
        backslashes_become_underscores: "..\\win\\ini" => some("_win_ini");
        absolute_path_becomes_one_name: "/tmp/x" => some("_tmp_x");
        crlf_header_injection_is_removed: "a\r\nb.txt" => some("ab.txt");
        nul_and_del_are_removed: "a\0b\u{7f}c" => some("abc");
        c1_controls_are_removed: "a\u{80}\u{9f}b" => some("ab");
        right_to_left_override_is_removed: "invoice\u{202E}fdp.exe" => some("invoicefdp.exe");
        bidi_isolates_and_marks_are_removed: "\u{2067}a\u{200F}\u{061C}b\u{2069}" => some("ab");
        zero_width_and_bom_are_removed: "\u{FEFF}a\u{200B}b\u{200D}c" => some("abc");
        emoji_and_cjk_are_kept: "報告 🎬.mp4" => some("報告 🎬.mp4");
        surrounding_whitespace_is_trimmed: " \u{3000}name.txt \t" => some("name.txt");
        leading_dots_are_trimmed: "...hidden" => some("hidden");
        dots_and_spaces_interleaved_are_trimmed: " . .x" => some("x");
        trailing_dot_is_kept: "name." => some("name.");
        only_dots_is_nothing: "..." => None;
        empty_is_nothing: "" => None;
        only_invisible_characters_is_nothing: "\u{202E}\u{200B}\0 " => None;
        long_name_keeps_short_extension: format!("{}.mp4", "a".repeat(300))
            => Some(format!("{}.mp4", "a".repeat(251)));
        long_name_with_long_extension_is_cut_plainly: format!("{}.{}", "a".repeat(300), "b".repeat(20))
            => Some("a".repeat(255));
        long_name_is_capped_in_characters_not_bytes: "é".repeat(300) => Some("é".repeat(255));
        cut_landing_on_a_space_is_trimmed: format!("{} {}", "a".repeat(254), "b".repeat(10))
            => Some("a".repeat(254));
        name_of_exactly_255_chars_is_unchanged: "a".repeat(255) => Some("a".repeat(255));
    }

    /// Deterministic pseudo-random names drawn from the characters the rules treat
    /// specially; cheap enough to run on every `cargo test`.
    #[test]
    fn sanitize_is_idempotent() {
        let alphabet = [
            'a',
            'Z',
            '.',
            ' ',
            '\t',
            '/',
            '\\',
            '\0',
            '\n',
            '\u{85}',
            '\u{202E}',
            '\u{200B}',
            '\u{3000}',
            'é',
            '報',
            '🎬',
            '"',
            ';',
            '%',
            '\u{E0041}',
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut inputs = hostile_names();
        for _ in 0..2_000 {
            let len = next() % 300;
            inputs.push(
                (0..len)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect(),
            );
        }
        for input in inputs {
            let once = sanitize_filename(&input);
            if let Some(once) = &once {
                assert!(once.chars().count() <= MAX_FILENAME_CHARS, "{once:?}");
                assert_eq!(sanitize_filename(once).as_ref(), Some(once), "{input:?}");
            }
        }
    }

    macro_rules! disposition_table {
        ($($name:ident: $content_type:expr => $expected:ident;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(
                    default_disposition($content_type),
                    DispositionType::$expected,
                    "{}",
                    $content_type
                );
            }
        )*};
    }

    disposition_table! {
        video_is_inline: "video/mp4" => Inline;
        audio_is_inline: "audio/mpeg" => Inline;
        png_is_inline: "image/png" => Inline;
        jpeg_with_parameters_in_upper_case_is_inline: "IMAGE/JPEG; charset=x" => Inline;
        gif_is_inline: "image/gif" => Inline;
        webp_is_inline: "image/webp" => Inline;
        avif_is_inline: "image/avif" => Inline;
        bmp_is_inline: "image/bmp" => Inline;
        apng_is_inline: "image/apng" => Inline;
        svg_is_attachment: "image/svg+xml" => Attachment;
        icon_is_attachment: "image/x-icon" => Attachment;
        other_image_is_attachment: "image/tiff" => Attachment;
        html_is_attachment: "text/html" => Attachment;
        plain_text_is_attachment: "text/plain; charset=utf-8" => Attachment;
        pdf_is_attachment: "application/pdf" => Attachment;
        json_is_attachment: "application/json" => Attachment;
        octet_stream_is_attachment: "application/octet-stream" => Attachment;
        missing_subtype_is_attachment: "video/" => Attachment;
        bare_type_is_attachment: "video" => Attachment;
        space_inside_media_type_is_attachment: "image/png <script>" => Attachment;
        empty_is_attachment: "" => Attachment;
    }

    #[test]
    fn disposition_type_parses_case_insensitively() {
        assert_eq!(
            DispositionType::parse("INLINE"),
            Some(DispositionType::Inline)
        );
        assert_eq!(
            DispositionType::parse(" Attachment "),
            Some(DispositionType::Attachment)
        );
        assert_eq!(DispositionType::parse("form-data"), None);
        assert_eq!(DispositionType::parse(""), None);
    }
}
