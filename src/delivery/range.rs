//! Byte-range requests: RFC 9110 §14 (Range Requests).
//!
//! [`parse_range`] turns a `Range` field value and the representation length into one of
//! three outcomes, and it is deliberately stricter than the grammar in §14.1.1 / §14.1.2:
//!
//! - Any unit other than `bytes` (case-insensitive, §14.1) or any syntax error anywhere in the
//!   field gives [`RangeRequest::Full`]: §14.2 lets a server ignore a `Range` it cannot or will
//!   not honor, and a 200 with the whole body is always a correct answer.
//! - Unsatisfiable specs are dropped; when none are left the answer is a 416 with
//!   `Content-Range: bytes */len` (§14.1.1, §14.4, §15.5.17).
//! - More than [`MAX_RANGES`] satisfiable ranges, or ranges that overlap or are not in
//!   ascending order, give [`RangeRequest::Full`]. §14.2 says a server MAY ignore such a set
//!   and §17.15 describes the range-amplification attack it defends against; rejecting them
//!   also means a multipart/byteranges body never has to reorder or merge parts.
//!
//! The parser runs in one pass over the header without allocating anything proportional to
//! the header: it stops as soon as the list passes 16 elements (empty ones included), the
//! satisfiable count passes [`MAX_RANGES`], or the order breaks, so hostile headers cost
//! microseconds.

/// A satisfiable byte range: `start..start+len` (len >= 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
}

impl ByteRange {
    /// The `last-pos` of this range as written in `Content-Range` (RFC 9110 §14.4).
    pub fn end_inclusive(&self) -> u64 {
        self.start + self.len - 1
    }

    /// `Content-Range` value for a 206 part, e.g. `bytes 0-9/100` (RFC 9110 §14.4).
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end_inclusive(), total)
    }

    fn end_exclusive(&self) -> u64 {
        self.start + self.len
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No Range header, or one the server ignores: serve the whole body with 200.
    Full,
    /// 1..=MAX_RANGES satisfiable ranges, ascending and non-overlapping (adjacent allowed).
    Partial(Vec<ByteRange>),
    /// Every range-spec is unsatisfiable: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Most satisfiable ranges served as a 206; a ninth makes the whole request a 200.
pub const MAX_RANGES: usize = 8;

/// Most list elements (specs and empty elements alike) read before giving up with
/// [`RangeRequest::Full`]. Larger than [`MAX_RANGES`] so a few unsatisfiable specs or stray
/// commas in a legitimate request still work; small enough that a 1,000-spec header or a
/// comma flood is rejected after reading a handful (§5.6.1 only asks recipients to accept
/// "a reasonable number of empty list elements").
const MAX_LIST_ELEMENTS: usize = 2 * MAX_RANGES;

/// Parses a `Range` field value (RFC 9110 §14.2) against a representation of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> RangeRequest {
    match parse_checked(header, len) {
        Some(ranges) if ranges.is_empty() => RangeRequest::Unsatisfiable,
        Some(ranges) => RangeRequest::Partial(ranges),
        None => RangeRequest::Full,
    }
}

/// `Content-Range` value for a 416: `bytes */len` (RFC 9110 §14.4).
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// `None` means "ignore the header"; an empty vector means every spec was unsatisfiable.
fn parse_checked(header: &str, len: u64) -> Option<Vec<ByteRange>> {
    let (unit, range_set) = trim_ows(header).split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }

    let mut ranges: Vec<ByteRange> = Vec::new();
    let mut specs = 0;
    // `1#range-spec` (RFC 9110 §5.6.1): empty elements are legal and skipped, but at least
    // one spec must be present.
    for (index, element) in range_set.split(',').map(trim_ows).enumerate() {
        if index == MAX_LIST_ELEMENTS {
            return None;
        }
        if element.is_empty() {
            continue;
        }
        specs += 1;
        let Some(range) = parse_spec(element, len)? else {
            continue;
        };
        if let Some(previous) = ranges.last() {
            if range.start < previous.end_exclusive() {
                return None;
            }
        }
        if ranges.len() == MAX_RANGES {
            return None;
        }
        ranges.push(range);
    }
    if specs == 0 {
        return None;
    }
    Some(ranges)
}

/// Outer `None` is a syntax error; inner `None` is a valid but unsatisfiable spec
/// (RFC 9110 §14.1.1).
fn parse_spec(spec: &str, len: u64) -> Option<Option<ByteRange>> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        let suffix = parse_digits(last)?;
        if suffix == 0 || len == 0 {
            return Some(None);
        }
        let take = suffix.min(len);
        return Some(Some(ByteRange {
            start: len - take,
            len: take,
        }));
    }

    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    if last.is_some_and(|last| last < first) {
        // §14.1.1: "invalid if the last-pos value is present and less than the first-pos".
        return None;
    }
    if first >= len {
        return Some(None);
    }
    let end_inclusive = last.map_or(len - 1, |last| last.min(len - 1));
    Some(Some(ByteRange {
        start: first,
        len: end_inclusive - first + 1,
    }))
}

/// `1*DIGIT` only: `str::parse` would also accept a leading `+`, which the ABNF does not.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// OWS is SP / HTAB only (RFC 9110 §5.6.3), unlike `str::trim`.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn partial(ranges: &[(u64, u64)]) -> RangeRequest {
        RangeRequest::Partial(
            ranges
                .iter()
                .map(|&(start, len)| ByteRange { start, len })
                .collect(),
        )
    }

    fn many_specs(count: u64) -> String {
        let specs: Vec<String> = (0..count)
            .map(|i| format!("{}-{}", i * 10, i * 10))
            .collect();
        format!("bytes={}", specs.join(","))
    }

    /// One `#[test]` per row, so a failure names the rule that broke.
    macro_rules! range_table {
        ($($name:ident: ($header:expr, $len:expr) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_range(&$header, $len), $expected, "Range: {}", $header);
            }
        )*};
    }

    range_table! {
        first_byte_only: ("bytes=0-0", 100) => partial(&[(0, 1)]);
        closed_range_is_inclusive: ("bytes=0-9", 100) => partial(&[(0, 10)]);
        suffix_selects_last_n_bytes: ("bytes=-10", 100) => partial(&[(90, 10)]);
        suffix_longer_than_body_selects_whole_body: ("bytes=-10", 5) => partial(&[(0, 5)]);
        open_range_runs_to_the_end: ("bytes=5-", 100) => partial(&[(5, 95)]);
        last_pos_past_the_end_is_clamped: ("bytes=90-1000", 100) => partial(&[(90, 10)]);
        last_pos_beyond_u64_body_is_clamped: ("bytes=0-18446744073709551615", 3) => partial(&[(0, 3)]);
        first_pos_equal_to_length_is_unsatisfiable: ("bytes=100-", 100) => RangeRequest::Unsatisfiable;
        first_pos_past_length_is_unsatisfiable: ("bytes=200-300", 100) => RangeRequest::Unsatisfiable;
        zero_length_suffix_is_unsatisfiable: ("bytes=-0", 100) => RangeRequest::Unsatisfiable;
        empty_body_makes_every_spec_unsatisfiable: ("bytes=0-0", 0) => RangeRequest::Unsatisfiable;
        empty_body_makes_suffix_unsatisfiable: ("bytes=-5", 0) => RangeRequest::Unsatisfiable;
        empty_body_makes_open_range_unsatisfiable: ("bytes=0-", 0) => RangeRequest::Unsatisfiable;
        three_ascending_ranges: ("bytes=0-9,20-29,-10", 100) => partial(&[(0, 10), (20, 10), (90, 10)]);
        adjacent_ranges_are_kept_apart: ("bytes=0-9,10-19", 100) => partial(&[(0, 10), (10, 10)]);
        overlapping_ranges_are_ignored: ("bytes=0-10,10-19", 100) => RangeRequest::Full;
        suffix_overlapping_earlier_range_is_ignored: ("bytes=0-95,-10", 100) => RangeRequest::Full;
        descending_ranges_are_ignored: ("bytes=20-29,0-9", 100) => RangeRequest::Full;
        eight_ranges_are_served: (many_specs(8), 1000) => partial(&[
            (0, 1), (10, 1), (20, 1), (30, 1), (40, 1), (50, 1), (60, 1), (70, 1),
        ]);
        nine_ranges_are_ignored: (many_specs(9), 1000) => RangeRequest::Full;
        a_thousand_ranges_are_ignored: (many_specs(1000), 100_000) => RangeRequest::Full;
        sixteen_specs_with_unsatisfiable_ones_are_read: (many_specs(16), 1) => partial(&[(0, 1)]);
        seventeen_specs_are_ignored_even_if_mostly_unsatisfiable: (many_specs(17), 1) => RangeRequest::Full;
        a_few_stray_commas_are_tolerated: ("bytes=0-1,,,,,,,,,,,,,,2-3", 100) => partial(&[(0, 2), (2, 2)]);
        a_comma_flood_is_ignored: ("bytes=0-1,,,,,,,,,,,,,,,,,,,,,,,,2-3", 100) => RangeRequest::Full;
        unsatisfiable_spec_is_dropped_and_satisfiable_kept: ("bytes=500-600,0-4", 100) => partial(&[(0, 5)]);
        dropped_spec_does_not_count_toward_order: ("bytes=0-4,500-600,10-14", 100) => partial(&[(0, 5), (10, 5)]);
        unit_is_case_insensitive: ("BYTES=0-1", 100) => partial(&[(0, 2)]);
        other_unit_is_ignored: ("items=0-1", 100) => RangeRequest::Full;
        missing_equals_is_ignored: ("bytes 0-1", 100) => RangeRequest::Full;
        whitespace_before_equals_is_ignored: ("bytes =0-1", 100) => RangeRequest::Full;
        ows_around_specs_and_commas_is_allowed: (" bytes= 0-1 ,\t5-6 ", 100) => partial(&[(0, 2), (5, 2)]);
        empty_list_elements_are_skipped: ("bytes=,0-1,,2-3,", 100) => partial(&[(0, 2), (2, 2)]);
        empty_range_set_is_ignored: ("bytes=", 100) => RangeRequest::Full;
        only_commas_is_ignored: ("bytes=, ,", 100) => RangeRequest::Full;
        garbage_is_ignored: ("garbage", 100) => RangeRequest::Full;
        empty_header_is_ignored: ("", 100) => RangeRequest::Full;
        lone_dash_is_ignored: ("bytes=-", 100) => RangeRequest::Full;
        last_pos_before_first_pos_is_ignored: ("bytes=10-5", 100) => RangeRequest::Full;
        plus_sign_is_ignored: ("bytes=+1-2", 100) => RangeRequest::Full;
        negative_looking_spec_is_ignored: ("bytes=--5", 100) => RangeRequest::Full;
        whitespace_inside_a_spec_is_ignored: ("bytes=0 -1", 100) => RangeRequest::Full;
        syntax_error_after_valid_spec_ignores_whole_header: ("bytes=0-1,x", 100) => RangeRequest::Full;
        syntax_error_after_unsatisfiable_spec_ignores_whole_header: ("bytes=500-,x", 100) => RangeRequest::Full;
        number_overflowing_u64_is_ignored: ("bytes=18446744073709551616-", 100) => RangeRequest::Full;
        suffix_overflowing_u64_is_ignored: ("bytes=-99999999999999999999", 100) => RangeRequest::Full;
        non_ascii_digits_are_ignored: ("bytes=\u{0661}-2", 100) => RangeRequest::Full;
    }

    #[test]
    fn content_range_names_inclusive_bounds_and_total() {
        let range = ByteRange { start: 0, len: 10 };
        assert_eq!(range.end_inclusive(), 9);
        assert_eq!(range.content_range(100), "bytes 0-9/100");
    }

    #[test]
    fn unsatisfied_content_range_names_only_the_length() {
        assert_eq!(unsatisfied_content_range(100), "bytes */100");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
    }

    /// Wall-clock bound is generous (debug build, busy CI); it catches quadratic or
    /// header-proportional work, not micro-regressions.
    #[test]
    fn hostile_headers_are_answered_quickly() {
        let hostile = [
            many_specs(1000),
            format!("bytes={}", "0-0,".repeat(25_000)),
            format!("bytes={}", ",".repeat(100_000)),
            format!("bytes=0-1{}x", " ".repeat(100_000)),
            format!("bytes={}", "9".repeat(100_000)),
            format!("bytes=0-{}", "1".repeat(100_000)),
        ];
        for header in &hostile {
            let started = Instant::now();
            let outcome = parse_range(header, u64::MAX);
            let elapsed = started.elapsed();
            assert_eq!(outcome, RangeRequest::Full, "{} bytes", header.len());
            assert!(
                elapsed < Duration::from_millis(50),
                "{} byte header took {elapsed:?}",
                header.len()
            );
        }
    }
}
