//! A strict RFC 4180 record splitter over a byte buffer.
//!
//! It finds record and field boundaries without copying: fields are byte
//! ranges into the buffer, quoted fields may contain `,`, `""` and line
//! breaks, records end at LF or CRLF. Problems are reported per record so one
//! bad line never rejects its neighbours: a quote inside an unquoted field or
//! text after a closing quote makes that record malformed and the splitter
//! resumes at the next line; an unterminated quote swallows the rest of the
//! input into one malformed record (nothing else can be known about it).
//! Blank (whitespace-only) lines are skipped.

use memchr::{memchr, memchr3};

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
    /// A malformed record spanning up to `end`.
    Malformed {
        end: usize,
        newlines: usize,
        message: &'static str,
    },
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

/// Splits the record starting at `start` (< `buf.len()`).
pub fn split_record(buf: &[u8], start: usize, eof: bool, fields: &mut Vec<FieldRange>) -> Step {
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
            let mut i = content;
            let mut escaped = false;
            let close = loop {
                match memchr(b'"', &buf[i..]) {
                    None => {
                        if !eof {
                            return Step::NeedMore;
                        }
                        return Step::Malformed {
                            end: n,
                            newlines: newlines + count_newlines(&buf[content..n]),
                            message: "unterminated quoted field",
                        };
                    }
                    Some(off) => {
                        let qpos = i + off;
                        if qpos + 1 == n && !eof {
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
            newlines += count_newlines(&buf[content..close]);
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
                _ => return resync(buf, a, eof, newlines, "text after a closing quote"),
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
                            return resync(buf, c, eof, newlines, "quote inside an unquoted field")
                        }
                    }
                }
            }
        }
    }
}

fn resync(buf: &[u8], from: usize, eof: bool, newlines: usize, message: &'static str) -> Step {
    match memchr(b'\n', &buf[from..]) {
        Some(off) => Step::Malformed {
            end: from + off + 1,
            newlines,
            message,
        },
        None if eof => Step::Malformed {
            end: buf.len(),
            newlines,
            message,
        },
        None => Step::NeedMore,
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

    fn split_all(input: &str) -> Vec<Result<Vec<String>, &'static str>> {
        let buf = input.as_bytes();
        let mut out = Vec::new();
        let mut fields = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            match split_record(buf, pos, true, &mut fields) {
                Step::Record { end, .. } => {
                    out.push(Ok(fields
                        .iter()
                        .map(|f| field_text(buf, f).unwrap().into_owned())
                        .collect()));
                    pos = end;
                }
                Step::Malformed { end, message, .. } => {
                    out.push(Err(message));
                    pos = end;
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
        assert_eq!(got[0], Err("quote inside an unquoted field"));
        assert_eq!(got[1], Ok(vec!["ok".into(), "1".into()]));
        assert_eq!(got[2], Err("text after a closing quote"));
        assert_eq!(got[3], Ok(vec!["ok".into(), "2".into()]));
    }

    #[test]
    fn unterminated_quote_is_one_malformed_record() {
        let got = split_all("ok,1\n\"open,2\nmore,3\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err("unterminated quoted field"));
    }

    #[test]
    fn needs_more_data_at_buffer_end() {
        let mut fields = Vec::new();
        assert_eq!(split_record(b"a,b", 0, false, &mut fields), Step::NeedMore);
        assert_eq!(
            split_record(b"a,\"b", 0, false, &mut fields),
            Step::NeedMore
        );
        assert_eq!(
            split_record(b"a,\"b\"", 0, false, &mut fields),
            Step::NeedMore
        );
        assert_eq!(
            split_record(b"a,b\nc", 0, false, &mut fields),
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
            split_record(b"\"a\nb\nc\",d\n", 0, true, &mut fields),
            Step::Record {
                end: 10,
                newlines: 2
            }
        );
    }
}
