//! A strict RFC 4180 record splitter over a byte buffer.
//!
//! It finds record and field boundaries without copying: fields are byte
//! ranges into the buffer, quoted fields may contain `,`, `""` and line
//! breaks, records end at LF or CRLF. Blank (whitespace-only) lines are
//! skipped. Problems are reported per record so one bad line never costs its
//! neighbours: a record that cannot be split ([`Step::Malformed`]: a quote
//! inside an unquoted field, text after a closing quote, a quoted field that
//! runs past [`SplitLimits`] or is still open at the end of the input, a
//! record longer than its limit) is the caller's to quarantine, and
//! splitting restarts at the line after the record's first line
//! ([`resume_after_first_line`]). The limits also bound how much input one
//! record can make the caller buffer.

use memchr::{memchr, memchr3};

/// How far one record and one quoted field may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLimits {
    /// Bytes one record may take.
    pub max_record: usize,
    /// Bytes of content a quoted field may have.
    pub max_quoted: usize,
    /// Line breaks a quoted field may contain.
    pub max_quoted_lines: usize,
}

impl SplitLimits {
    /// No practical limit (for trusted inputs such as model files).
    pub const NONE: SplitLimits = SplitLimits {
        max_record: usize::MAX / 2,
        max_quoted: usize::MAX / 2,
        max_quoted_lines: usize::MAX,
    };
}

/// Why a record cannot be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// Broken quoting (a quote inside an unquoted field, text after a
    /// closing quote).
    Syntax(&'static str),
    /// A quoted field ran past [`SplitLimits::max_quoted`] bytes or
    /// [`SplitLimits::max_quoted_lines`] line breaks without closing.
    QuotedTooLong,
    /// A quoted field is still open at the end of the input.
    Unterminated,
    /// The record runs past [`SplitLimits::max_record`] bytes.
    TooLong,
}

impl Malformation {
    pub fn message(self) -> &'static str {
        match self {
            Malformation::Syntax(m) => m,
            Malformation::QuotedTooLong => "a quoted field runs past its limit without closing",
            Malformation::Unterminated => {
                "a quoted field is not closed before the end of the input"
            }
            Malformation::TooLong => "the record runs past its byte limit",
        }
    }
}

/// One field: a byte range, and whether `""` escapes must be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRange {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// Outcome of looking for one record at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A record; its fields were pushed. `end` is just past its line terminator;
    /// `newlines` counts line breaks inside quoted fields.
    Record { end: usize, newlines: usize },
    /// The record starting here cannot be split. The caller quarantines its
    /// first line and resumes at the next one ([`resume_after_first_line`]).
    Malformed(Malformation),
    /// A blank line ending at `end`.
    Blank { end: usize },
    /// The buffer ends inside the record: read more (only when not at EOF).
    NeedMore,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

fn count_newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

/// Where splitting resumes after a malformed record starting at `start`: just
/// past the first line break at or after it, or the end of the input at
/// EOF. `None`: not in the buffer yet.
pub fn resume_after_first_line(buf: &[u8], start: usize, eof: bool) -> Option<usize> {
    match memchr(b'\n', &buf[start..]) {
        Some(off) => Some(start + off + 1),
        None if eof => Some(buf.len()),
        None => None,
    }
}

/// Splits the record starting at `start` (< `buf.len()`) within `limits`.
/// It looks at no more than `limits.max_record + 1` bytes (a record of
/// `max_record` bytes and its line break), so the outcome does not depend on
/// how much of the input is buffered, and it never asks for more input
/// beyond that: the record is then [`Malformation::TooLong`].
pub fn split_record(
    buf: &[u8],
    start: usize,
    eof: bool,
    limits: &SplitLimits,
    fields: &mut Vec<FieldRange>,
) -> Step {
    let cap = buf
        .len()
        .min(start.saturating_add(limits.max_record).saturating_add(1));
    let capped = cap < buf.len();
    match split_inner(&buf[..cap], start, eof && !capped, limits, fields) {
        Step::NeedMore if capped || cap - start > limits.max_record => {
            Step::Malformed(Malformation::TooLong)
        }
        step => step,
    }
}

fn split_inner(
    buf: &[u8],
    start: usize,
    eof: bool,
    limits: &SplitLimits,
    fields: &mut Vec<FieldRange>,
) -> Step {
    fields.clear();
    let n = buf.len();
    let mut q = start;
    while q < n && is_ws(buf[q]) {
        q += 1;
    }
    if q < n && buf[q] == b'\n' {
        return Step::Blank { end: q + 1 };
    }
    if q == n {
        return if eof {
            Step::Blank { end: n }
        } else {
            Step::NeedMore
        };
    }
    let mut newlines = 0;
    let mut p = start;
    loop {
        let mut s = p;
        while s < n && (buf[s] == b' ' || buf[s] == b'\t') {
            s += 1;
        }
        if s < n && buf[s] == b'"' {
            let content = s + 1;
            // A closing quote at content + max_quoted still fits.
            let limit_end = n.min(content.saturating_add(limits.max_quoted).saturating_add(1));
            let mut i = content;
            let mut escaped = false;
            let close = loop {
                let hit = if i < limit_end {
                    memchr(b'"', &buf[i..limit_end])
                } else {
                    None
                };
                match hit {
                    None => {
                        let scanned = &buf[content..limit_end.max(content)];
                        if limit_end - content > limits.max_quoted
                            || count_newlines(scanned) > limits.max_quoted_lines
                        {
                            return Step::Malformed(Malformation::QuotedTooLong);
                        }
                        return if eof {
                            Step::Malformed(Malformation::Unterminated)
                        } else {
                            Step::NeedMore
                        };
                    }
                    Some(off) => {
                        let qpos = i + off;
                        if qpos + 1 == n && !eof {
                            // `"` or `""`: the next byte decides, unless the
                            // field is already past its line limit.
                            if count_newlines(&buf[content..qpos]) > limits.max_quoted_lines {
                                return Step::Malformed(Malformation::QuotedTooLong);
                            }
                            return Step::NeedMore;
                        }
                        if qpos + 1 < n && buf[qpos + 1] == b'"' {
                            escaped = true;
                            i = qpos + 2;
                            continue;
                        }
                        break qpos;
                    }
                }
            };
            let inside = count_newlines(&buf[content..close]);
            if inside > limits.max_quoted_lines {
                return Step::Malformed(Malformation::QuotedTooLong);
            }
            newlines += inside;
            fields.push(FieldRange {
                start: content,
                end: close,
                escaped,
            });
            let mut a = close + 1;
            while a < n && is_ws(buf[a]) {
                a += 1;
            }
            if a == n {
                return if eof {
                    Step::Record { end: n, newlines }
                } else {
                    Step::NeedMore
                };
            }
            match buf[a] {
                b',' => p = a + 1,
                b'\n' => {
                    return Step::Record {
                        end: a + 1,
                        newlines,
                    }
                }
                _ => return Step::Malformed(Malformation::Syntax("text after a closing quote")),
            }
        } else {
            match memchr3(b',', b'\n', b'"', &buf[p..]) {
                None => {
                    if !eof {
                        return Step::NeedMore;
                    }
                    fields.push(FieldRange {
                        start: p,
                        end: n,
                        escaped: false,
                    });
                    return Step::Record { end: n, newlines };
                }
                Some(off) => {
                    let c = p + off;
                    match buf[c] {
                        b',' => {
                            fields.push(FieldRange {
                                start: p,
                                end: c,
                                escaped: false,
                            });
                            p = c + 1;
                        }
                        b'\n' => {
                            fields.push(FieldRange {
                                start: p,
                                end: c,
                                escaped: false,
                            });
                            return Step::Record {
                                end: c + 1,
                                newlines,
                            };
                        }
                        _ => {
                            return Step::Malformed(Malformation::Syntax(
                                "quote inside an unquoted field",
                            ))
                        }
                    }
                }
            }
        }
    }
}

/// The text of a field: trimmed, `""` unescaped; `None` if not UTF-8.
pub fn field_text<'a>(buf: &'a [u8], f: &FieldRange) -> Option<std::borrow::Cow<'a, str>> {
    let text = std::str::from_utf8(&buf[f.start..f.end]).ok()?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    Some(if f.escaped {
        std::borrow::Cow::Owned(text.replace("\"\"", "\""))
    } else {
        std::borrow::Cow::Borrowed(text)
    })
}

/// A field's text within a record already checked to be UTF-8 (`rec` starts
/// at buffer offset `offset`): trimmed, `""` unescaped. Field boundaries are
/// ASCII delimiters, so slicing cannot split a character.
pub fn field_in<'a>(rec: &'a str, offset: usize, f: &FieldRange) -> std::borrow::Cow<'a, str> {
    let text =
        rec[f.start - offset..f.end - offset].trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if f.escaped {
        std::borrow::Cow::Owned(text.replace("\"\"", "\""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A record's raw bytes without its line terminator.
pub fn raw_span(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let mut e = end;
    if e > start && buf[e - 1] == b'\n' {
        e -= 1;
    }
    if e > start && buf[e - 1] == b'\r' {
        e -= 1;
    }
    &buf[start..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: SplitLimits = SplitLimits {
        max_record: 64,
        max_quoted: 16,
        max_quoted_lines: 2,
    };

    /// Splits a whole input, resynchronising as the decoder does.
    fn split_all(input: &str) -> Vec<Result<Vec<String>, Malformation>> {
        let buf = input.as_bytes();
        let mut out = Vec::new();
        let mut fields = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            match split_record(buf, pos, true, &LIM, &mut fields) {
                Step::Record { end, .. } => {
                    out.push(Ok(fields
                        .iter()
                        .map(|f| field_text(buf, f).unwrap().into_owned())
                        .collect()));
                    pos = end;
                }
                Step::Malformed(m) => {
                    out.push(Err(m));
                    pos = resume_after_first_line(buf, pos, true).unwrap();
                }
                Step::Blank { end } => pos = end,
                Step::NeedMore => panic!("NeedMore at eof"),
            }
        }
        out
    }

    #[test]
    fn plain_quoted_crlf_and_trimming() {
        let got =
            split_all("a, b ,c\r\n\"x,1\",\"say \"\"hi\"\"\", \"multi\nline\" \r\n\n  \r\nlast,,");
        assert_eq!(
            got,
            vec![
                Ok(vec!["a".into(), "b".into(), "c".into()]),
                Ok(vec![
                    "x,1".into(),
                    "say \"hi\"".into(),
                    "multi\nline".into()
                ]),
                Ok(vec!["last".into(), "".into(), "".into()]),
            ]
        );
    }

    #[test]
    fn malformed_records_do_not_swallow_neighbours() {
        let got = split_all("a,b\"c,d\nok,1\n\"q\"x,2\nok,2\n");
        assert_eq!(
            got[0],
            Err(Malformation::Syntax("quote inside an unquoted field"))
        );
        assert_eq!(got[1], Ok(vec!["ok".into(), "1".into()]));
        assert_eq!(
            got[2],
            Err(Malformation::Syntax("text after a closing quote"))
        );
        assert_eq!(got[3], Ok(vec!["ok".into(), "2".into()]));
    }

    #[test]
    fn an_open_quote_costs_only_its_own_line() {
        // Closed by nothing: past max_quoted_lines, resume at line 2.
        let got = split_all("\"open,2\nok,3\nok,4\nok,5\n");
        assert_eq!(got[0], Err(Malformation::QuotedTooLong));
        assert_eq!(
            &got[1..],
            &[
                Ok(vec!["ok".into(), "3".into()]),
                Ok(vec!["ok".into(), "4".into()]),
                Ok(vec!["ok".into(), "5".into()]),
            ]
        );
        // Open at the end of the input, within the limits.
        let got = split_all("ok,1\n\"open,2\nok,3");
        assert_eq!(got[1], Err(Malformation::Unterminated));
        assert_eq!(got[2], Ok(vec!["ok".into(), "3".into()]));
        // Past max_quoted bytes on one line.
        let got = split_all("\"aaaaaaaaaaaaaaaaaaaaaaaa\",1\nok,2\n");
        assert_eq!(
            got,
            vec![
                Err(Malformation::QuotedTooLong),
                Ok(vec!["ok".into(), "2".into()])
            ]
        );
        // Exactly max_quoted bytes is fine.
        let got = split_all("\"aaaaaaaaaaaaaaaa\",1\n");
        assert_eq!(got, vec![Ok(vec!["a".repeat(16), "1".into()])]);
    }

    #[test]
    fn a_long_line_is_too_long_without_reading_it_all() {
        let mut fields = Vec::new();
        let long = "x".repeat(100);
        assert_eq!(
            split_record(long.as_bytes(), 0, false, &LIM, &mut fields),
            Step::Malformed(Malformation::TooLong)
        );
        let short = "x".repeat(60);
        assert_eq!(
            split_record(short.as_bytes(), 0, false, &LIM, &mut fields),
            Step::NeedMore
        );
    }

    #[test]
    fn needs_more_data_at_buffer_end() {
        let mut fields = Vec::new();
        let l = &SplitLimits::NONE;
        assert_eq!(
            split_record(b"a,b", 0, false, l, &mut fields),
            Step::NeedMore
        );
        assert_eq!(
            split_record(b"a,\"b", 0, false, l, &mut fields),
            Step::NeedMore
        );
        assert_eq!(
            split_record(b"a,\"b\"", 0, false, l, &mut fields),
            Step::NeedMore
        );
        assert_eq!(
            split_record(b"a,b\nc", 0, false, l, &mut fields),
            Step::Record {
                end: 4,
                newlines: 0
            }
        );
    }

    #[test]
    fn newlines_inside_quotes_are_counted() {
        let mut fields = Vec::new();
        assert_eq!(
            split_record(b"\"a\nb\nc\",d\n", 0, true, &LIM, &mut fields),
            Step::Record {
                end: 10,
                newlines: 2
            }
        );
        assert_eq!(
            split_record(b"\"a\nb\nc\nd\",d\n", 0, true, &LIM, &mut fields),
            Step::Malformed(Malformation::QuotedTooLong)
        );
    }
}
