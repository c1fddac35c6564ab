//! Hostile input through the decoders.
//!
//! - The CSV splitter against an independent, byte-at-a-time reference
//!   splitter written here from the rules in the README (same limits, same
//!   resynchronisation at the line after a bad record's first line).
//! - The whole decoder (CSV and NDJSON) against a reference model of which
//!   input lines become records and which reasons the splitting-level
//!   rejects carry: every record is accepted or quarantined exactly once.
//! - The outcome does not depend on how the input is buffered (tiny read
//!   blocks against one big one).
//! - Arbitrary bytes never panic and never keep more than the limits allow.
//! - Each documented limit and each finding of the hostile-input issue.
//!
//! Case counts are sized for CI; `PROPTEST_CASES=20000 cargo test -p
//! finopsia-core --test hostile` runs a long fuzzing session (README).

use std::io::Read;

use datafusion::arrow::array::AsArray;
use finopsia_core::csv::{split_record, Malformation, SplitLimits, Step};
use finopsia_core::input::{FileDecoder, Format, Preset, Reason, Reject};
use finopsia_core::limits::{Bounds, Limits};
use proptest::prelude::*;

// ---------------------------------------------------------------- reference

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Trimmed, unescaped fields; whether a quoted field held a line break.
    Record(Vec<Vec<u8>>, bool),
    Blank,
    Bad(Malformation),
}

fn trim(b: &[u8]) -> Vec<u8> {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r');
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    b[start..end.max(start)].to_vec()
}

/// Just past the first line break at or after `start`, or the end.
fn first_line_end(input: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < input.len() {
        if input[i] == b'\n' {
            return i + 1;
        }
        i += 1;
    }
    input.len()
}

/// The reference splitter: one byte at a time, looking at most at
/// `max_record + 1` bytes from the record's start. Returns the outcome and
/// where the next record starts (for `Bad`, the line after the first).
fn ref_split(input: &[u8], start: usize, lim: &SplitLimits) -> (Outcome, usize) {
    let cap = input.len().min(start + lim.max_record + 1);
    let at_end = cap == input.len();
    let v = &input[..cap];
    let bad = |m: Malformation| (Outcome::Bad(m), first_line_end(input, start));
    let out_of_view = |m: Malformation| {
        if at_end {
            bad(m)
        } else {
            bad(Malformation::TooLong)
        }
    };
    let mut j = start;
    while j < cap && matches!(v[j], b' ' | b'\t' | b'\r') {
        j += 1;
    }
    if j < cap && v[j] == b'\n' {
        return (Outcome::Blank, j + 1);
    }
    if j == cap {
        return if at_end {
            (Outcome::Blank, cap)
        } else {
            bad(Malformation::TooLong)
        };
    }
    let mut fields = Vec::new();
    let mut multiline = false;
    let mut i = start;
    loop {
        let mut k = i;
        while k < cap && matches!(v[k], b' ' | b'\t') {
            k += 1;
        }
        if k < cap && v[k] == b'"' {
            let mut content = Vec::new();
            let (mut raw_len, mut lines, mut m) = (0usize, 0usize, k + 1);
            loop {
                if raw_len > lim.max_quoted || lines > lim.max_quoted_lines {
                    return bad(Malformation::QuotedTooLong);
                }
                if m == cap {
                    return out_of_view(Malformation::Unterminated);
                }
                if v[m] == b'"' {
                    if m + 1 < cap && v[m + 1] == b'"' {
                        content.push(b'"');
                        raw_len += 2;
                        m += 2;
                        continue;
                    }
                    if m + 1 == cap && !at_end {
                        return bad(Malformation::TooLong);
                    }
                    break;
                }
                if v[m] == b'\n' {
                    lines += 1;
                }
                content.push(v[m]);
                raw_len += 1;
                m += 1;
            }
            multiline |= lines > 0;
            fields.push(trim(&content));
            let mut a = m + 1;
            while a < cap && matches!(v[a], b' ' | b'\t' | b'\r') {
                a += 1;
            }
            if a == cap {
                return if at_end {
                    (Outcome::Record(fields, multiline), cap)
                } else {
                    bad(Malformation::TooLong)
                };
            }
            match v[a] {
                b',' => i = a + 1,
                b'\n' => return (Outcome::Record(fields, multiline), a + 1),
                _ => return bad(Malformation::Syntax("text after a closing quote")),
            }
        } else {
            let mut m = i;
            loop {
                if m == cap {
                    if !at_end {
                        return bad(Malformation::TooLong);
                    }
                    fields.push(trim(&v[i..cap]));
                    return (Outcome::Record(fields, multiline), cap);
                }
                match v[m] {
                    b',' => {
                        fields.push(trim(&v[i..m]));
                        i = m + 1;
                        break;
                    }
                    b'\n' => {
                        fields.push(trim(&v[i..m]));
                        return (Outcome::Record(fields, multiline), m + 1);
                    }
                    b'"' => return bad(Malformation::Syntax("quote inside an unquoted field")),
                    _ => m += 1,
                }
            }
        }
    }
}

fn ref_split_all(input: &[u8], lim: &SplitLimits) -> Vec<(usize, Outcome)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let (o, next) = ref_split(input, pos, lim);
        out.push((pos, o));
        pos = next;
    }
    out
}

/// The crate's splitter driven as the decoder drives it.
fn impl_split_all(input: &[u8], lim: &SplitLimits) -> Vec<(usize, Outcome)> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        match split_record(input, pos, true, lim, &mut fields) {
            Step::Record { end, newlines } => {
                let texts = fields
                    .iter()
                    .map(|f| {
                        let raw = &input[f.start..f.end];
                        let mut text = Vec::with_capacity(raw.len());
                        let mut i = 0;
                        while i < raw.len() {
                            text.push(raw[i]);
                            // `""` inside a quoted field is one quote.
                            i += if f.escaped && raw[i] == b'"' { 2 } else { 1 };
                        }
                        let raw = text;
                        trim(&raw)
                    })
                    .collect();
                out.push((pos, Outcome::Record(texts, newlines > 0)));
                pos = end;
            }
            Step::Blank { end } => {
                out.push((pos, Outcome::Blank));
                pos = end;
            }
            Step::Malformed(m) => {
                out.push((pos, Outcome::Bad(m)));
                pos = finopsia_core::csv::resume_after_first_line(input, pos, true).unwrap();
            }
            Step::NeedMore => panic!("NeedMore at the end of the input"),
        }
    }
    out
}

// ------------------------------------------------------------------ decoder

fn bounds(max_record: usize, max_field: usize, max_quoted: usize, lines: usize) -> Bounds {
    Limits {
        max_record_bytes: max_record,
        max_field_bytes: max_field,
        max_quoted_bytes: max_quoted,
        max_quoted_lines: lines,
        ..Limits::default()
    }
    .bounds()
    .expect("valid test limits")
}

/// Everything a decoder produced: accepted (line, description) and rejects.
#[derive(Debug, PartialEq)]
struct Decoded {
    accepted: Vec<(u64, String)>,
    rejects: Vec<(u64, &'static str, Vec<u8>)>,
}

fn decode(input: &[u8], format: Format, b: Bounds, block: usize) -> Decoded {
    let mut d = FileDecoder::with_block(
        Box::new(std::io::Cursor::new(input.to_vec())),
        "hostile",
        format,
        &Preset::default(),
        b,
        "test",
        block,
    )
    .expect("the header is fine");
    let mut out = Decoded {
        accepted: Vec::new(),
        rejects: Vec::new(),
    };
    while let Some(c) = d.next_chunk(7).expect("no I/O errors on a cursor") {
        let desc = c
            .records
            .column_by_name("description")
            .unwrap()
            .as_string::<i32>();
        for i in 0..c.records.num_rows() {
            out.accepted
                .push((c.positions.line(i), desc.value(i).to_string()));
        }
        for r in &c.rejects {
            out.rejects
                .push((r.line.unwrap(), r.reason.code(), r.raw.clone()));
        }
        assert!(
            d.buffered() <= 4 * block.max(b.max_record_bytes + 1) + 64,
            "buffered {} bytes",
            d.buffered()
        );
    }
    out
}

const HEADER: &[u8] =
    b"transaction_id,account_id,amount,currency,direction,description,transaction_date\n";
const NCOLS: usize = 7;

fn reason_of(m: Malformation) -> &'static str {
    match m {
        Malformation::Syntax(_) => "unparsable_line",
        Malformation::QuotedTooLong => "quoted_field_too_long",
        Malformation::Unterminated => "unterminated_quote",
        Malformation::TooLong => "record_too_long",
    }
}

/// Which lines of a CSV body must become a row, and the splitting-level
/// reason of those that cannot be split.
/// (line, splitting-level reason or None for a row, fields).
type RefRow = (u64, Option<&'static str>, Vec<Vec<u8>>);

fn ref_csv_rows(input: &[u8], b: &Bounds) -> Vec<RefRow> {
    let lim = SplitLimits {
        max_record: b.max_record_bytes,
        max_quoted: b.max_quoted_bytes,
        max_quoted_lines: b.max_quoted_lines,
    };
    let line_of = |pos: usize| 1 + input[..pos].iter().filter(|c| **c == b'\n').count() as u64;
    let mut pos = HEADER.len();
    let mut rows = Vec::new();
    while pos < input.len() {
        let (o, next) = ref_split(input, pos, &lim);
        let line = line_of(pos);
        match o {
            Outcome::Blank => pos = next,
            Outcome::Bad(m) => {
                rows.push((line, Some(reason_of(m)), Vec::new()));
                pos = next;
            }
            Outcome::Record(fields, multiline) => {
                let raw = finopsia_core::csv::raw_span(input, pos, next);
                if raw.len() > b.max_record_bytes {
                    rows.push((line, Some("record_too_long"), Vec::new()));
                    pos = first_line_end(input, pos);
                } else if multiline && fields.len() != NCOLS {
                    rows.push((line, Some("wrong_field_count"), Vec::new()));
                    pos = first_line_end(input, pos);
                } else {
                    rows.push((line, None, fields));
                    pos = next;
                }
            }
        }
    }
    rows
}

fn check_csv_against_reference(body: &[u8], b: Bounds, block: usize) {
    let mut input = HEADER.to_vec();
    input.extend_from_slice(body);
    let got = decode(&input, Format::Csv, b, block);
    let whole = decode(&input, Format::Csv, b, 1 << 22);
    assert_eq!(got, whole, "the outcome depends on the read block size");
    let want = ref_csv_rows(&input, &b);
    let mut by_line: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for (line, desc) in &got.accepted {
        by_line.entry(*line).or_default().push(format!("ok:{desc}"));
    }
    for (line, reason, raw) in &got.rejects {
        assert!(
            raw.len() <= b.max_record_bytes,
            "quarantine keeps at most the limit"
        );
        by_line.entry(*line).or_default().push(reason.to_string());
    }
    assert_eq!(
        by_line.values().map(Vec::len).sum::<usize>(),
        want.len(),
        "every record is accepted or quarantined exactly once: decoded {by_line:?}, reference {want:?}"
    );
    for (line, reason, fields) in &want {
        let got = by_line
            .get(line)
            .unwrap_or_else(|| panic!("line {line} missing: {by_line:?}"));
        assert_eq!(got.len(), 1, "line {line}: {got:?}");
        let got = &got[0];
        match reason {
            Some(r) => assert_eq!(got, r, "line {line}"),
            None => {
                let splitting = [
                    "unparsable_line",
                    "quoted_field_too_long",
                    "unterminated_quote",
                    "record_too_long",
                ];
                assert!(
                    !splitting.contains(&got.as_str()),
                    "line {line} splits but was rejected as {got}"
                );
                if let Some(desc) = got.strip_prefix("ok:") {
                    assert_eq!(desc.as_bytes(), fields[5].as_slice(), "line {line}");
                }
            }
        }
    }
}

// --------------------------------------------------------------- generators

fn hostile_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => Just(b'a'),
        2 => Just(b'b'),
        4 => Just(b','),
        4 => Just(b'"'),
        3 => Just(b'\n'),
        1 => Just(b'\r'),
        2 => Just(b' '),
        1 => Just(b'\t'),
        1 => Just(0u8),
        1 => Just(0xffu8),
        1 => any::<u8>(),
    ]
}

/// A CSV body: good records (plain or quoted descriptions with escapes and
/// line breaks, sometimes empty) mixed with hostile fragments.
fn csv_body() -> impl Strategy<Value = Vec<u8>> {
    let good = (
        0u32..1000,
        proptest::collection::vec(hostile_byte(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(id, desc, quote)| {
            let mut row = format!("t{id},acc,1.00,USD,inflow,").into_bytes();
            if quote {
                row.push(b'"');
                for c in desc {
                    if c == b'"' {
                        row.extend_from_slice(b"\"\"");
                    } else {
                        row.push(c);
                    }
                }
                row.push(b'"');
            } else {
                row.extend(
                    desc.into_iter()
                        .filter(|c| !matches!(c, b'"' | b',' | b'\n' | b'\r')),
                );
            }
            row.extend_from_slice(b",2024-01-01\n");
            row
        });
    let junk = proptest::collection::vec(hostile_byte(), 0..40);
    proptest::collection::vec(prop_oneof![3 => good, 1 => junk], 0..12)
        .prop_map(|parts| parts.concat())
}

fn small_limits() -> impl Strategy<Value = Bounds> {
    (100usize..200, 0usize..4).prop_flat_map(|(record, lines)| {
        (64usize..=record, 64usize..=record)
            .prop_map(move |(field, quoted)| bounds(record, field, quoted, lines))
    })
}

fn cases(n: u32) -> ProptestConfig {
    // PROPTEST_CASES overrides for long runs.
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(n),
        // Failures are printed with their minimal input; no files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn splitter_matches_the_reference(
        input in proptest::collection::vec(hostile_byte(), 0..300),
        max_record in 8usize..80,
        max_quoted in 2usize..40,
        lines in 0usize..4,
    ) {
        let lim = SplitLimits { max_record, max_quoted, max_quoted_lines: lines };
        prop_assert_eq!(impl_split_all(&input, &lim), ref_split_all(&input, &lim));
    }

    #[test]
    fn csv_decoder_keeps_every_good_record(
        body in csv_body(),
        b in small_limits(),
        block in 1usize..48,
    ) {
        check_csv_against_reference(&body, b, block);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_within_limits(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        b in small_limits(),
        block in 1usize..64,
    ) {
        check_csv_against_reference(&body, b, block);
        let json = decode(&body, Format::Ndjson, b, block);
        prop_assert_eq!(&json, &decode(&body, Format::Ndjson, b, 1 << 22));
        check_ndjson_lines(&body, &b, &json);
    }

    #[test]
    fn ndjson_lines_are_rows_exactly_once(
        lines in proptest::collection::vec(ndjson_line(), 0..10),
        b in small_limits(),
        block in 1usize..48,
    ) {
        let body = lines.concat();
        let got = decode(&body, Format::Ndjson, b, block);
        prop_assert_eq!(&got, &decode(&body, Format::Ndjson, b, 1 << 22));
        check_ndjson_lines(&body, &b, &got);
    }
}

fn ndjson_line() -> impl Strategy<Value = Vec<u8>> {
    let good = (0u32..100, proptest::collection::vec(hostile_byte(), 0..10)).prop_map(
        |(id, desc)| {
            let desc = serde_json::to_string(&String::from_utf8_lossy(&desc)).unwrap();
            format!("{{\"transaction_id\":\"t{id}\",\"account_id\":\"a\",\"amount\":\"1.00\",\"currency\":\"USD\",\"direction\":\"inflow\",\"description\":{desc},\"transaction_date\":\"2024-01-01\"}}\n").into_bytes()
        },
    );
    let junk = proptest::collection::vec(hostile_byte(), 0..50);
    let nested = (1usize..300).prop_map(|d| {
        format!(
            "{{\"transaction_id\":\"n\",\"description\":{}{}}}\n",
            "[".repeat(d),
            "]".repeat(d)
        )
        .into_bytes()
    });
    prop_oneof![4 => good, 2 => junk, 1 => nested]
}

/// NDJSON: each non-blank line is one row; its splitting-level reason (too
/// long, NUL, not UTF-8) is exactly the reference's.
fn check_ndjson_lines(body: &[u8], b: &Bounds, got: &Decoded) {
    let mut want = Vec::new();
    for (line, raw) in (1u64..).zip(body.split_inclusive(|c| *c == b'\n')) {
        let text = finopsia_core::csv::raw_span(raw, 0, raw.len());
        if !text.iter().all(|c| c.is_ascii_whitespace()) {
            let reason = if text.len() > b.max_record_bytes {
                Some("record_too_long")
            } else if text.contains(&0) {
                Some("nul_byte")
            } else if std::str::from_utf8(text).is_err() {
                Some("invalid_utf8")
            } else {
                None
            };
            want.push((line, reason));
        }
    }
    let mut rows: Vec<(u64, Option<&str>)> = got
        .accepted
        .iter()
        .map(|(l, _)| (*l, None))
        .chain(got.rejects.iter().map(|(l, r, _)| (*l, Some(*r))))
        .collect();
    rows.sort();
    assert_eq!(rows.len(), want.len(), "{rows:?} vs {want:?}");
    for ((gl, gr), (wl, wr)) in rows.iter().zip(&want) {
        assert_eq!(gl, wl);
        match wr {
            Some(r) => assert_eq!(gr, &Some(*r), "line {wl}"),
            None => assert!(
                !matches!(gr, Some("record_too_long" | "nul_byte" | "invalid_utf8")),
                "line {wl}: {gr:?}"
            ),
        }
    }
    for (_, _, raw) in &got.rejects {
        assert!(raw.len() <= b.max_record_bytes);
    }
}

// ------------------------------------------------------- documented limits

fn decode_default(input: &[u8], format: Format) -> (usize, Vec<Reject>) {
    let mut d = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(input.to_vec())),
        "t",
        format,
        &Preset::default(),
        Bounds::default(),
        "s",
    )
    .unwrap();
    let (mut n, mut rejects) = (0, Vec::new());
    while let Some(c) = d.next_chunk(100_000).unwrap() {
        n += c.records.num_rows();
        rejects.extend(c.rejects);
    }
    (n, rejects)
}

#[test]
fn an_unterminated_quote_costs_one_record_not_the_file() {
    let mut input = HEADER.to_vec();
    input.extend_from_slice(b"t0,acc,1.00,USD,outflow,\"Best Buy #12,2024-01-01\n");
    for i in 1..99_999 {
        input.extend_from_slice(
            format!("t{i},acc,1.00,USD,outflow,Shop {i},2024-01-01\n").as_bytes(),
        );
    }
    let (n, rejects) = decode_default(&input, Format::Csv);
    assert_eq!(n, 99_998);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reason, Reason::QuotedFieldTooLong);
    assert_eq!(rejects[0].line, Some(2));
    assert_eq!(
        rejects[0].raw,
        b"t0,acc,1.00,USD,outflow,\"Best Buy #12,2024-01-01".to_vec()
    );
    // Open at the very end of the input, within the limits.
    let mut input = HEADER.to_vec();
    input.extend_from_slice(
        b"t1,acc,1.00,USD,outflow,ok,2024-01-01\nt2,acc,1.00,USD,outflow,\"open,2024-01-01\n",
    );
    let (n, rejects) = decode_default(&input, Format::Csv);
    assert_eq!((n, rejects[0].reason), (1, Reason::UnterminatedQuote));
}

#[test]
fn dates_and_amounts_outside_the_limits_are_quarantined() {
    let mut input = HEADER.to_vec();
    for (i, (amount, date)) in [
        ("1.00", "0001-01-01"),
        ("1.00", "9999-12-31"),
        ("1.00", "1899-12-31T23:59:59Z"),
        ("1.00", "2200-01-01"),
        ("92233720368547758.07", "2024-01-01"),
        ("10000000000.01", "2024-01-01"),
        // At the limits: accepted.
        ("10000000000.00", "1900-01-01"),
        ("1.00", "2199-12-31T23:59:59Z"),
    ]
    .iter()
    .enumerate()
    {
        input.extend_from_slice(format!("t{i},acc,{amount},USD,inflow,x,{date}\n").as_bytes());
    }
    let (n, rejects) = decode_default(&input, Format::Csv);
    assert_eq!(n, 2);
    let reasons: Vec<_> = rejects.iter().map(|r| r.reason.code()).collect();
    assert_eq!(
        reasons,
        [
            "date_out_of_range",
            "date_out_of_range",
            "date_out_of_range",
            "date_out_of_range",
            "amount_out_of_range",
            "amount_out_of_range"
        ]
    );
    assert!(
        rejects[0].detail.contains("limits.min_date"),
        "{}",
        rejects[0].detail
    );
    // posted_at is held to the same range.
    let text = "{\"transaction_id\":\"p\",\"account_id\":\"a\",\"amount\":1,\"currency\":\"USD\",\"direction\":\"inflow\",\"transaction_date\":\"2024-01-01\",\"posted_at\":\"9999-01-01\"}\n";
    let (n, rejects) = decode_default(text.as_bytes(), Format::Ndjson);
    assert_eq!((n, rejects[0].reason), (0, Reason::DateOutOfRange));
    assert!(rejects[0].detail.contains("posted_at"));
}

/// A reader of a huge generated record without holding it in memory.
struct Huge {
    prefix: Vec<u8>,
    filler: u64,
    suffix: Vec<u8>,
    at: u64,
}

impl Read for Huge {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let (p, f) = (self.prefix.len() as u64, self.filler);
        let total = p + f + self.suffix.len() as u64;
        let mut n = 0;
        while n < out.len() && self.at < total {
            out[n] = if self.at < p {
                self.prefix[self.at as usize]
            } else if self.at < p + f {
                b'x'
            } else {
                self.suffix[(self.at - p - f) as usize]
            };
            n += 1;
            self.at += 1;
        }
        Ok(n)
    }
}

#[test]
fn a_50_mb_description_is_quarantined_in_bounded_memory() {
    for (format, prefix, suffix) in [
        (
            Format::Csv,
            [HEADER, b"big,acc,1.00,USD,inflow,"].concat(),
            b",2024-01-01\nt2,acc,1.00,USD,inflow,next,2024-01-01\n".to_vec(),
        ),
        (
            Format::Ndjson,
            b"{\"transaction_id\":\"big\",\"description\":\"".to_vec(),
            b"\"}\n{\"transaction_id\":\"t2\",\"account_id\":\"a\",\"amount\":\"1.00\",\"currency\":\"USD\",\"direction\":\"inflow\",\"description\":\"next\",\"transaction_date\":\"2024-01-01\"}\n".to_vec(),
        ),
    ] {
        let huge = Huge {
            prefix,
            filler: 50 << 20,
            suffix,
            at: 0,
        };
        let limits = Bounds::default();
        let mut d = FileDecoder::from_reader(
            Box::new(huge),
            "huge",
            format,
            &Preset::default(),
            limits,
            "s",
        )
        .unwrap();
        let (mut n, mut rejects, mut peak) = (0, Vec::new(), 0);
        while let Some(c) = d.next_chunk(1000).unwrap() {
            n += c.records.num_rows();
            rejects.extend(c.rejects);
            peak = peak.max(d.buffered());
        }
        assert_eq!(n, 1, "{format:?}: the record after it is kept");
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].reason, Reason::RecordTooLong);
        assert_eq!(rejects[0].raw.len(), limits.max_record_bytes);
        assert!(
            peak < 16 << 20,
            "{format:?}: buffered {peak} bytes for a 50 MB record"
        );
    }
}

#[test]
fn field_nul_and_utf8_limits_have_their_reasons() {
    let long = "y".repeat(16_385);
    let mut input = HEADER.to_vec();
    input.extend_from_slice(format!("t1,acc,1.00,USD,inflow,{long},2024-01-01\n").as_bytes());
    input.extend_from_slice(b"t2,acc,1.00,USD,inflow,a\x00b,2024-01-01\n");
    input.extend_from_slice(b"t3,acc,1.00,USD,inflow,caf\xe9,2024-01-01\n");
    input.extend_from_slice(b"t4,acc,1.00,USD,inflow,\"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\",2024-01-01\n");
    input.extend_from_slice(b"t5,acc,1.00,USD,inflow,ok,2024-01-01\n");
    let (n, rejects) = decode_default(&input, Format::Csv);
    let reasons: Vec<_> = rejects.iter().map(|r| r.reason.code()).collect();
    // t4's 17 line breaks pass max_quoted_lines (16): its first line is
    // quarantined and each following line is judged on its own.
    assert_eq!(
        &reasons[..4],
        [
            "field_too_long",
            "nul_byte",
            "invalid_utf8",
            "quoted_field_too_long"
        ]
    );
    assert!(
        rejects[0].detail.contains("description"),
        "{}",
        rejects[0].detail
    );
    assert_eq!(n, 1, "{reasons:?}");
    assert_eq!(rejects.len(), 4 + 17, "{reasons:?}");
}

#[test]
fn ndjson_hostile_lines_each_cost_only_themselves() {
    let good = "{\"transaction_id\":\"g\",\"account_id\":\"a\",\"amount\":\"1.00\",\"currency\":\"USD\",\"direction\":\"inflow\",\"transaction_date\":\"2024-01-01\"}";
    let deeper = format!(
        "{{\"transaction_id\":\"d\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (deeper.into_bytes(), "record_too_long"),
        // Deep nesting within the byte limit: in an unknown field it is
        // skipped (the record then lacks fields), in a record field it
        // passes serde_json's recursion limit. Neither overflows the stack.
        (
            format!(
                "{{\"transaction_id\":\"d\",\"x\":{}{}}}",
                "[".repeat(30_000),
                "]".repeat(30_000)
            )
            .into_bytes(),
            "missing_field",
        ),
        (
            good.replace(
                "\"a\"",
                &format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
            )
            .into_bytes(),
            "unparsable_line",
        ),
        (
            good.replace("\"1.00\"", "1e999999").into_bytes(),
            "invalid_amount",
        ),
        (
            good.replace("\"1.00\"", &"9".repeat(400)).into_bytes(),
            "amount_out_of_range",
        ),
        (
            good.replace(
                "\"amount\":\"1.00\"",
                "\"amount\":\"1.00\",\"amount\":\"2.00\"",
            )
            .into_bytes(),
            "unparsable_line",
        ),
        (
            good.replace("\"a\"", "\"\\ud800\"").into_bytes(),
            "unparsable_line",
        ),
        (
            good.replace("\"a\"", "\"caf\u{e9}\"")
                .replace('\u{e9}', "\u{0}")
                .into_bytes(),
            "nul_byte",
        ),
        (
            [
                good.as_bytes()[..60].to_vec(),
                vec![0xc3, 0x28],
                good.as_bytes()[60..].to_vec(),
            ]
            .concat(),
            "invalid_utf8",
        ),
        (b"[1,2,3]".to_vec(), "unparsable_line"),
        (b"null".to_vec(), "unparsable_line"),
        (
            good.replace("\"a\"", "{\"nested\":true}").into_bytes(),
            "unparsable_line",
        ),
    ];
    let mut input = Vec::new();
    for (line, _) in &cases {
        input.extend_from_slice(line);
        input.push(b'\n');
        input.extend_from_slice(
            good.replace("\"g\"", &format!("\"g{}\"", input.len()))
                .as_bytes(),
        );
        input.push(b'\n');
    }
    let (n, rejects) = decode_default(&input, Format::Ndjson);
    assert_eq!(
        n,
        cases.len(),
        "every good line after a hostile one is kept"
    );
    let got: Vec<_> = rejects.iter().map(|r| r.reason.code()).collect();
    let want: Vec<_> = cases.iter().map(|(_, r)| *r).collect();
    assert_eq!(got, want);
}

#[test]
fn the_header_is_held_to_the_limits() {
    let mut input = vec![b'h'; 70_000];
    input.push(b'\n');
    let e = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(input)),
        "t.csv",
        Format::Csv,
        &Preset::default(),
        Bounds::default(),
        "s",
    )
    .err()
    .expect("an over-long header is an input error");
    assert!(e.to_string().contains("header"), "{e}");
}

#[test]
fn field_text_is_unchanged_by_the_limits() {
    // A quoted field exactly at max_quoted_bytes is accepted as is.
    let b = bounds(200, 100, 100, 0);
    let desc = "z".repeat(100);
    let mut input = HEADER.to_vec();
    input.extend_from_slice(format!("t,acc,1.00,USD,inflow,\"{desc}\",2024-01-01\n").as_bytes());
    let got = decode(&input, Format::Csv, b, 5);
    assert_eq!(got.accepted, vec![(2, desc)]);
}
