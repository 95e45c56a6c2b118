//! Conditional requests: RFC 9110 §13.1 (preconditions) evaluated in the §13.2.2 order.
//!
//! [`evaluate`] runs after the server knows the representation exists and would otherwise
//! answer 2xx (§13.2.1); a 404 or 401 is decided before it. The order is the RFC's:
//!
//! 1. `If-Match` present: false (no strong match; `*` is true) gives 412 (§13.1.1).
//! 2. Otherwise `If-Unmodified-Since` with a valid date: modified after it gives 412 (§13.1.4).
//! 3. `If-None-Match` present: true means continue; a weak match (or `*`) gives 304 for
//!    GET/HEAD and 412 for any other method (§13.1.2).
//! 4. Otherwise, for GET/HEAD, `If-Modified-Since` with a valid date: not modified since gives
//!    304 (§13.1.3).
//! 5. GET with `Range` and `If-Range`: the range is honored only when the validator matches
//!    (§13.1.5); a date must equal Last-Modified and an entity-tag must match strongly.
//!
//! Range is honored only for GET: §14.2 defines range semantics for GET alone, so HEAD with a
//! `Range` gets the headers of a full 200. An invalid date or a repeated date field is ignored
//! as §13.1.3/§13.1.4 require; a malformed entity-tag list member never matches, which fails
//! safe in both directions (`If-Match` gives 412, `If-None-Match` gives a full 200).
//!
//! Dates compare at one-second resolution because HTTP-date has no finer unit (§5.6.7) and
//! `Last-Modified` is emitted truncated to the second.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Method};

/// What the server knows about the selected representation (RFC 9110 §8.8).
pub struct Validators<'a> {
    /// The strong entity tag including quotes, e.g. "\"3a7bd3e2...\"".
    pub etag: &'a str,
    /// Last modification time (compare at one-second resolution, since HTTP dates have seconds).
    pub last_modified: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation; `honor_range` is false when If-Range failed (serve 200 full)
    /// or the method is not GET.
    Proceed { honor_range: bool },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluates the request's preconditions against the selected representation
/// (RFC 9110 §13.2.2).
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Precondition {
    let current = EntityTag::parse_single(v.etag.as_bytes());
    let modified = unix_seconds(v.last_modified);
    let is_get_or_head = method == Method::GET || method == Method::HEAD;

    if headers.contains_key(IF_MATCH) {
        if !tag_condition_holds(headers, IF_MATCH, current, strong_eq) {
            return Precondition::PreconditionFailed;
        }
    } else if let Some(date) = single_date(headers, IF_UNMODIFIED_SINCE) {
        if modified > date {
            return Precondition::PreconditionFailed;
        }
    }

    if headers.contains_key(IF_NONE_MATCH) {
        if tag_condition_holds(headers, IF_NONE_MATCH, current, weak_eq) {
            return if is_get_or_head {
                Precondition::NotModified
            } else {
                Precondition::PreconditionFailed
            };
        }
    } else if is_get_or_head {
        if let Some(date) = single_date(headers, IF_MODIFIED_SINCE) {
            if modified <= date {
                return Precondition::NotModified;
            }
        }
    }

    // §13.1.5: If-Range without Range is ignored, so only a present Range consults it.
    let honor_range = method == Method::GET
        && (!headers.contains_key(RANGE) || if_range_holds(headers, current, modified));
    Precondition::Proceed { honor_range }
}

/// The strong entity-tag for content addressed by its SHA-256, e.g. `"3a7b..."`
/// (RFC 9110 §8.8.3): the digest changes whenever a single byte does.
pub fn strong_etag_from_sha256(hex: &str) -> String {
    debug_assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "not hex: {hex}");
    format!("\"{hex}\"")
}

/// `entity-tag = [ weak ] opaque-tag` (RFC 9110 §8.8.3); `opaque` keeps its quotes.
#[derive(Clone, Copy)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// A field that must hold exactly one entity-tag (our own ETag, If-Range).
    fn parse_single(value: &'a [u8]) -> Option<Self> {
        let mut members = EntityTagList::new(value);
        match (members.next(), members.next()) {
            (Some(Ok(tag)), None) => Some(tag),
            _ => None,
        }
    }
}

/// §8.8.3.2: strong comparison needs both tags strong and identical.
fn strong_eq(a: &EntityTag, b: &EntityTag) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// §8.8.3.2: weak comparison ignores the `W/` prefix.
fn weak_eq(a: &EntityTag, b: &EntityTag) -> bool {
    a.opaque == b.opaque
}

/// Walks `#entity-tag` (RFC 9110 §5.6.1). Splitting on ',' would be wrong because `etagc`
/// includes ',', so members are scanned quote to quote; a malformed member is reported as
/// `Err(())` and skipped up to the next comma.
struct EntityTagList<'a> {
    rest: &'a [u8],
}

impl<'a> EntityTagList<'a> {
    fn new(value: &'a [u8]) -> Self {
        Self { rest: value }
    }

    fn scan_member(&self) -> Option<(EntityTag<'a>, &'a [u8])> {
        let (weak, quoted) = match self.rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, self.rest),
        };
        let inner = quoted.strip_prefix(b"\"")?;
        let close = inner.iter().position(|&b| b == b'"')?;
        if !inner[..close].iter().all(|&b| is_etagc(b)) {
            return None;
        }
        let opaque = &quoted[..close + 2];
        let after = trim_ows_start(&inner[close + 1..]);
        match after.first() {
            None | Some(b',') => Some((EntityTag { weak, opaque }, after)),
            Some(_) => None,
        }
    }
}

impl<'a> Iterator for EntityTagList<'a> {
    type Item = Result<EntityTag<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        // Empty list elements and OWS between members are legal (§5.6.1).
        let start = self
            .rest
            .iter()
            .position(|&b| !matches!(b, b',' | b' ' | b'\t'))?;
        self.rest = &self.rest[start..];
        match self.scan_member() {
            Some((tag, after)) => {
                self.rest = after;
                Some(Ok(tag))
            }
            None => {
                let skip = self
                    .rest
                    .iter()
                    .position(|&b| b == b',')
                    .unwrap_or(self.rest.len());
                self.rest = &self.rest[skip..];
                Some(Err(()))
            }
        }
    }
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

/// If-Match / If-None-Match: `"*" / #entity-tag`, with repeated lines forming one list
/// (§5.3). `*` is only the wildcard when it is the whole field; inside a list it is a
/// malformed member. The representation exists whenever this runs, so `*` always holds.
fn tag_condition_holds(
    headers: &HeaderMap,
    name: HeaderName,
    current: Option<EntityTag>,
    eq: fn(&EntityTag, &EntityTag) -> bool,
) -> bool {
    let mut lines = headers.get_all(&name).iter();
    if let (Some(only), None) = (lines.next(), lines.next()) {
        if trim_ows(only.as_bytes()) == b"*" {
            return true;
        }
    }
    let Some(current) = current else {
        return false;
    };
    headers
        .get_all(&name)
        .iter()
        .flat_map(|line| EntityTagList::new(line.as_bytes()))
        .any(|member| member.is_ok_and(|tag| eq(&tag, &current)))
}

/// §13.1.5: an entity-tag must match strongly; a date must equal Last-Modified exactly.
/// Anything else, including a repeated field, means "send the full representation"; no
/// If-Range at all leaves the Range in force.
fn if_range_holds(headers: &HeaderMap, current: Option<EntityTag>, modified: i128) -> bool {
    let mut lines = headers.get_all(IF_RANGE).iter();
    let value = match (lines.next(), lines.next()) {
        (None, _) => return true,
        (Some(value), None) => value,
        (Some(_), Some(_)) => return false,
    };
    let value = trim_ows(value.as_bytes());
    // §13.1.5: a DQUOTE within the first three characters marks an entity-tag.
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse_single(value), current) {
            (Some(tag), Some(current)) => strong_eq(&tag, &current),
            _ => false,
        };
    }
    parse_date(value) == Some(modified)
}

/// §13.1.3 and §13.1.4: ignore the field unless it is a single valid HTTP-date. A list of
/// dates is also invalid, and since dates contain commas, repeated lines are the only way
/// to recognize one.
fn single_date(headers: &HeaderMap, name: HeaderName) -> Option<i128> {
    let mut lines = headers.get_all(name).iter();
    match (lines.next(), lines.next()) {
        (Some(value), None) => parse_date(value.as_bytes()),
        _ => None,
    }
}

fn parse_date(value: &[u8]) -> Option<i128> {
    let text = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(text.trim())
        .ok()
        .map(unix_seconds)
}

/// Whole seconds since the epoch, floored like an emitted `Last-Modified`. Signed so a
/// pre-1970 mtime (possible on odd filesystems) compares instead of panicking.
fn unix_seconds(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(before) => {
            let before = before.duration();
            -i128::from(before.as_secs()) - i128::from(before.subsec_nanos() > 0)
        }
    }
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let end = value
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    trim_ows_start(&value[..end])
}

fn trim_ows_start(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    &value[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    const ETAG: &str = "\"abc\"";
    /// Last-Modified emitted for [`last_modified`], which carries a sub-second part.
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LM_RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
    const LM_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const BEFORE_ASCTIME: &str = "Sun Nov  6 08:49:36 1994";

    const PROCEED: Precondition = Precondition::Proceed { honor_range: true };
    const PROCEED_FULL: Precondition = Precondition::Proceed { honor_range: false };
    const NOT_MODIFIED: Precondition = Precondition::NotModified;
    const FAILED: Precondition = Precondition::PreconditionFailed;

    fn last_modified() -> SystemTime {
        UNIX_EPOCH + Duration::new(784_111_777, 600_000_000)
    }

    fn run(method: Method, etag: &str, fields: &[(&str, &str)]) -> Precondition {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let validators = Validators {
            etag,
            last_modified: last_modified(),
        };
        evaluate(&method, &headers, &validators)
    }

    /// One `#[test]` per row so a failure names the rule that broke.
    macro_rules! precondition_table {
        ($($name:ident: ($method:ident, [$(($field:expr, $value:expr)),* $(,)?]) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(run(Method::$method, ETAG, &[$(($field, $value)),*]), $expected);
            }
        )*};
    }

    precondition_table! {
        no_conditions_proceeds_with_range: (GET, [("range", "bytes=0-1")]) => PROCEED;
        head_never_honors_range: (HEAD, [("range", "bytes=0-1")]) => PROCEED_FULL;
        post_never_honors_range: (POST, [("range", "bytes=0-1")]) => PROCEED_FULL;

        if_match_strong_match_proceeds: (GET, [("if-match", ETAG)]) => PROCEED;
        if_match_wildcard_proceeds: (GET, [("if-match", "*")]) => PROCEED;
        if_match_mismatch_returns_412: (GET, [("if-match", "\"other\"")]) => FAILED;
        if_match_weak_tag_never_matches: (GET, [("if-match", "W/\"abc\"")]) => FAILED;
        if_match_list_containing_current_tag_proceeds: (PUT, [("if-match", "\"x\" ,\t\"abc\"")]) => PROCEED_FULL;
        if_match_lines_combine_into_one_list: (GET, [("if-match", "\"x\""), ("if-match", ETAG)]) => PROCEED;
        if_match_malformed_members_never_match: (GET, [("if-match", "abc, \"abc, W/abc")]) => FAILED;
        if_match_malformed_member_does_not_hide_later_match: (GET, [("if-match", "abc\", \"abc\"")]) => PROCEED;
        if_match_unquoted_tag_never_matches: (GET, [("if-match", "abc")]) => FAILED;
        if_match_wildcard_inside_list_is_malformed: (GET, [("if-match", "*, \"x\"")]) => FAILED;
        if_match_wildcard_repeated_on_two_lines_is_malformed: (GET, [("if-match", "*"), ("if-match", "*")]) => FAILED;
        if_match_empty_list_returns_412: (GET, [("if-match", "")]) => FAILED;
        if_match_true_skips_if_unmodified_since: (GET, [("if-match", ETAG), ("if-unmodified-since", BEFORE)]) => PROCEED;

        if_unmodified_since_before_modification_returns_412: (GET, [("if-unmodified-since", BEFORE)]) => FAILED;
        if_unmodified_since_same_second_proceeds: (GET, [("if-unmodified-since", LM)]) => PROCEED;
        if_unmodified_since_after_modification_proceeds: (PUT, [("if-unmodified-since", AFTER)]) => PROCEED_FULL;
        if_unmodified_since_accepts_asctime: (GET, [("if-unmodified-since", BEFORE_ASCTIME)]) => FAILED;
        if_unmodified_since_invalid_date_is_ignored: (GET, [("if-unmodified-since", "yesterday")]) => PROCEED;
        if_unmodified_since_repeated_is_ignored: (GET, [("if-unmodified-since", BEFORE), ("if-unmodified-since", BEFORE)]) => PROCEED;

        if_none_match_strong_match_returns_304: (GET, [("if-none-match", ETAG)]) => NOT_MODIFIED;
        if_none_match_weak_tag_matches_weakly: (GET, [("if-none-match", "W/\"abc\"")]) => NOT_MODIFIED;
        if_none_match_wildcard_returns_304: (GET, [("if-none-match", "*")]) => NOT_MODIFIED;
        if_none_match_on_head_returns_304: (HEAD, [("if-none-match", ETAG)]) => NOT_MODIFIED;
        if_none_match_mismatch_proceeds: (GET, [("if-none-match", "\"other\"")]) => PROCEED;
        if_none_match_list_containing_current_tag_returns_304: (GET, [("if-none-match", "\"x\", W/\"y\",, \"abc\"")]) => NOT_MODIFIED;
        if_none_match_lines_combine_into_one_list: (GET, [("if-none-match", "\"x\""), ("if-none-match", "W/\"abc\"")]) => NOT_MODIFIED;
        if_none_match_comma_inside_tag_is_part_of_the_tag: (GET, [("if-none-match", "\"abc,\", \"x,abc\"")]) => PROCEED;
        if_none_match_unterminated_tag_never_matches: (GET, [("if-none-match", "\"abc")]) => PROCEED;
        if_none_match_trailing_garbage_never_matches: (GET, [("if-none-match", "\"abc\"x")]) => PROCEED;
        if_none_match_match_on_post_returns_412: (POST, [("if-none-match", ETAG)]) => FAILED;
        if_none_match_wildcard_on_put_returns_412: (PUT, [("if-none-match", "*")]) => FAILED;

        if_modified_since_same_second_returns_304: (GET, [("if-modified-since", LM)]) => NOT_MODIFIED;
        if_modified_since_accepts_rfc850: (GET, [("if-modified-since", LM_RFC850)]) => NOT_MODIFIED;
        if_modified_since_accepts_asctime: (GET, [("if-modified-since", LM_ASCTIME)]) => NOT_MODIFIED;
        if_modified_since_later_returns_304: (HEAD, [("if-modified-since", AFTER)]) => NOT_MODIFIED;
        if_modified_since_before_modification_proceeds: (GET, [("if-modified-since", BEFORE)]) => PROCEED;
        if_modified_since_invalid_date_is_ignored: (GET, [("if-modified-since", "Sun, 06 Nov 1994")]) => PROCEED;
        if_modified_since_repeated_is_ignored: (GET, [("if-modified-since", LM), ("if-modified-since", LM)]) => PROCEED;
        if_modified_since_is_ignored_for_post: (POST, [("if-modified-since", AFTER)]) => PROCEED_FULL;

        failed_if_match_beats_matching_if_none_match: (GET, [("if-match", "\"x\""), ("if-none-match", ETAG)]) => FAILED;
        failed_if_unmodified_since_beats_matching_if_none_match: (GET, [("if-unmodified-since", BEFORE), ("if-none-match", ETAG)]) => FAILED;
        if_none_match_mismatch_overrides_if_modified_since: (GET, [("if-none-match", "\"x\""), ("if-modified-since", AFTER)]) => PROCEED;
        not_modified_wins_over_range: (GET, [("if-none-match", ETAG), ("range", "bytes=0-1")]) => NOT_MODIFIED;
        not_modified_since_wins_over_range: (GET, [("if-modified-since", LM), ("range", "bytes=0-1")]) => NOT_MODIFIED;

        if_range_strong_match_honors_range: (GET, [("if-range", ETAG), ("range", "bytes=0-1")]) => PROCEED;
        if_range_weak_tag_ignores_range: (GET, [("if-range", "W/\"abc\""), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_stale_tag_ignores_range: (GET, [("if-range", "\"old\""), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_tag_list_ignores_range: (GET, [("if-range", "\"abc\", \"abc\""), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_exact_date_honors_range: (GET, [("if-range", LM), ("range", "bytes=0-1")]) => PROCEED;
        if_range_earlier_date_ignores_range: (GET, [("if-range", BEFORE), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_later_date_ignores_range: (GET, [("if-range", AFTER), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_unparsable_value_ignores_range: (GET, [("if-range", "tomorrow"), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_repeated_ignores_range: (GET, [("if-range", ETAG), ("if-range", ETAG), ("range", "bytes=0-1")]) => PROCEED_FULL;
        if_range_without_range_is_ignored: (GET, [("if-range", "\"old\"")]) => PROCEED;
        if_range_match_on_head_still_ignores_range: (HEAD, [("if-range", ETAG), ("range", "bytes=0-1")]) => PROCEED_FULL;
        passing_if_none_match_then_failing_if_range_serves_full: (GET, [("if-none-match", "\"x\""), ("if-range", "\"x\""), ("range", "bytes=0-1")]) => PROCEED_FULL;
    }

    #[test]
    fn weak_current_etag_never_matches_strongly_but_does_weakly() {
        let weak = "W/\"abc\"";
        assert_eq!(run(Method::GET, weak, &[("if-match", ETAG)]), FAILED);
        assert_eq!(
            run(Method::GET, weak, &[("if-none-match", ETAG)]),
            NOT_MODIFIED
        );
        let if_range = [("if-range", weak), ("range", "bytes=0-1")];
        assert_eq!(run(Method::GET, weak, &if_range), PROCEED_FULL);
    }

    #[test]
    fn obs_text_in_entity_tags_is_compared_bytewise_without_panicking() {
        let validators = Validators {
            etag: "\"caf\u{e9}\"",
            last_modified: last_modified(),
        };
        let mut headers = HeaderMap::new();
        headers.append(IF_NONE_MATCH, HeaderValue::from_bytes(b"\"\xff").unwrap());
        headers.append(
            IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"\xff\xfe\"").unwrap(),
        );
        assert_eq!(evaluate(&Method::GET, &headers, &validators), PROCEED);

        headers.append(
            IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"caf\xc3\xa9\"").unwrap(),
        );
        assert_eq!(evaluate(&Method::GET, &headers, &validators), NOT_MODIFIED);
    }

    #[test]
    fn pre_epoch_modification_time_compares_without_panicking() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_MODIFIED_SINCE, HeaderValue::from_static(LM));
        let validators = Validators {
            etag: ETAG,
            last_modified: UNIX_EPOCH - Duration::from_millis(1500),
        };
        assert_eq!(evaluate(&Method::GET, &headers, &validators), NOT_MODIFIED);
        assert_eq!(unix_seconds(validators.last_modified), -2);
    }

    #[test]
    fn strong_etag_from_sha256_is_the_quoted_digest() {
        let hex = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b";
        let etag = strong_etag_from_sha256(hex);
        assert_eq!(etag, format!("\"{hex}\""));
        assert!(HeaderValue::from_str(&etag).is_ok());
    }
}
