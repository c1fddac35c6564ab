//! InfluxDB line protocol: escaping and the rows → lines mapping.
//!
//! One line is `measurement,tag=v,... field=v,... timestamp`. Escaping,
//! portable across InfluxDB 1.x, 2.x and 3.x (checked against 1.6.7 here):
//!
//! - measurement, tag keys, tag values and field keys: `,`, `=` and space
//!   are escaped with a backslash.
//! - Tag values (and names) cannot carry a newline, and a backslash before
//!   a delimiter or at the end is read differently by 1.x and 2.x. So in
//!   names and tag values exactly four characters are percent-encoded:
//!   `%` → `%25`, `\` → `%5C`, LF → `%0A`, CR → `%0D`. [`decode_tag`]
//!   reverses it; a value without those characters is written verbatim.
//! - String field values are double-quoted with `\` → `\\` and `"` → `\"`;
//!   newlines are kept as they are.
//! - Integers carry the `i` suffix, floats are written in Rust's shortest
//!   round-tripping form; NaN and infinities (which line protocol cannot
//!   carry) and NULLs are left out of the line; an empty or NULL tag value
//!   leaves the tag out (InfluxQL reads a missing tag as `""`).

use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

/// Timestamp precision of the written lines (the `precision` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    pub fn parse(text: &str) -> Option<Precision> {
        Some(match text {
            "ns" => Precision::Ns,
            "us" => Precision::Us,
            "ms" => Precision::Ms,
            "s" => Precision::S,
            _ => return None,
        })
    }

    /// The `precision` query value of the v1/v2 APIs.
    pub fn v1(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "u",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }

    /// The `precision` query value of the v2 API.
    pub fn v2(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "us",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }

    /// The `precision` query value of the v3 `write_lp` API.
    pub fn v3(self) -> &'static str {
        match self {
            Precision::Ns => "nanosecond",
            Precision::Us => "microsecond",
            Precision::Ms => "millisecond",
            Precision::S => "second",
        }
    }

    /// Nanoseconds per unit.
    fn per(self) -> i64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }

    /// `ns` nanoseconds in this precision (floored).
    pub fn from_nanos(self, ns: i64) -> i64 {
        ns.div_euclid(self.per())
    }
}

fn escape_into(out: &mut String, text: &str, extra: &[char]) {
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\\' => out.push_str("%5C"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            c if extra.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Appends a measurement name.
pub fn measurement(out: &mut String, name: &str) {
    escape_into(out, name, &[]);
}

/// Appends a tag key, tag value or field key.
pub fn key(out: &mut String, text: &str) {
    escape_into(out, text, &['=']);
}

/// Appends a string field value (quoted).
pub fn string_value(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reverses the percent-encoding of names and tag values (what InfluxQL
/// returns for a tag → the original text).
pub fn decode_tag(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3);
        let c = match code {
            Some("25") => Some('%'),
            Some("5C") => Some('\\'),
            Some("0A") => Some('\n'),
            Some("0D") => Some('\r'),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// One point under construction.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, Value)>,
}

impl Point {
    pub fn tag(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.tags.push((k.to_string(), v.to_string()));
        }
        self
    }

    pub fn field(&mut self, k: &str, v: Value) -> &mut Self {
        if !matches!(v, Value::Float(f) if !f.is_finite()) {
            self.fields.push((k.to_string(), v));
        }
        self
    }

    /// The line (without its newline), or `None` for a point without
    /// fields, which line protocol cannot express.
    pub fn line(&self, name: &str, ts: i64) -> Option<String> {
        if self.fields.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(64 + 16 * (self.tags.len() + self.fields.len()));
        measurement(&mut out, name);
        let mut tags: Vec<&(String, String)> = self.tags.iter().collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in tags {
            out.push(',');
            key(&mut out, k);
            out.push('=');
            key(&mut out, v);
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            key(&mut out, k);
            out.push('=');
            match v {
                Value::Int(n) => {
                    let _ = write!(out, "{n}i");
                }
                Value::Float(f) => {
                    let _ = write!(out, "{f}");
                }
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Str(s) => string_value(&mut out, s),
            }
        }
        let _ = write!(out, " {ts}");
        Some(out)
    }
}

/// A cell as a tag value (any type; `None` for NULL).
pub fn cell_text(col: &dyn Array, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => col.as_string_view().value(row).to_string(),
        DataType::Date32 => {
            let d = col.as_primitive::<Date32Type>().value(row);
            date_text(d)
        }
        _ => datafusion::arrow::util::display::array_value_to_string(col, row).ok()?,
    })
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
pub fn date_text(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A cell as a field value (`None` for NULL or a type line protocol cannot
/// carry exactly as a number, which is written as text instead).
pub fn cell_value(col: &dyn Array, row: usize) -> Option<Value> {
    if col.is_null(row) {
        return None;
    }
    let int = |v: i64| Some(Value::Int(v));
    match col.data_type() {
        DataType::Int8 => int(col.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(col.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(col.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(col.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(col.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(col.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(col.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = col.as_primitive::<UInt64Type>().value(row);
            match i64::try_from(v) {
                Ok(v) => int(v),
                Err(_) => Some(Value::Str(v.to_string())),
            }
        }
        DataType::Float32 => Some(Value::Float(
            col.as_primitive::<Float32Type>().value(row).into(),
        )),
        DataType::Float64 => Some(Value::Float(col.as_primitive::<Float64Type>().value(row))),
        DataType::Boolean => Some(Value::Bool(col.as_boolean().value(row))),
        DataType::Decimal128(_, 0) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            match i64::try_from(v) {
                Ok(v) => int(v),
                Err(_) => Some(Value::Str(v.to_string())),
            }
        }
        _ => cell_text(col, row).map(Value::Str),
    }
}

/// A timestamp or date cell in nanoseconds since the epoch.
pub fn cell_nanos(col: &dyn Array, row: usize) -> Option<i64> {
    if col.is_null(row) {
        return None;
    }
    match col.data_type() {
        DataType::Timestamp(unit, _) => {
            let (v, per) = match unit {
                TimeUnit::Second => (
                    col.as_primitive::<TimestampSecondType>().value(row),
                    1_000_000_000,
                ),
                TimeUnit::Millisecond => (
                    col.as_primitive::<TimestampMillisecondType>().value(row),
                    1_000_000,
                ),
                TimeUnit::Microsecond => (
                    col.as_primitive::<TimestampMicrosecondType>().value(row),
                    1_000,
                ),
                TimeUnit::Nanosecond => {
                    (col.as_primitive::<TimestampNanosecondType>().value(row), 1)
                }
            };
            v.checked_mul(per)
        }
        DataType::Date32 => {
            i64::from(col.as_primitive::<Date32Type>().value(row)).checked_mul(86_400_000_000_000)
        }
        _ => None,
    }
}

/// The lines of a window table's rows: measurement = `table`, tags = the
/// group keys, fields = every other column but `window_start`/`window_end`
/// (plus `currency_exponent` when a `currency` key is present), timestamp
/// = `window_start`. Rows that cannot be written (no window_start, no
/// field) are counted in the second value.
pub fn window_lines(
    table: &str,
    keys: &[String],
    rows: &RecordBatch,
    precision: Precision,
) -> (Vec<String>, usize) {
    let schema = rows.schema();
    let Ok(ws) = schema.index_of("window_start") else {
        return (Vec::new(), rows.num_rows());
    };
    let key_idx: Vec<(usize, &str)> = keys
        .iter()
        .filter_map(|k| schema.index_of(k).ok().map(|i| (i, k.as_str())))
        .collect();
    let currency = key_idx
        .iter()
        .find(|(_, k)| *k == "currency")
        .map(|(i, _)| *i);
    let fields: Vec<(usize, &str)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            *i != ws && f.name() != "window_end" && !key_idx.iter().any(|(k, _)| k == i)
        })
        .map(|(i, f)| (i, f.name().as_str()))
        .collect();
    let mut out = Vec::with_capacity(rows.num_rows());
    let mut skipped = 0;
    for row in 0..rows.num_rows() {
        let Some(ts) = cell_nanos(rows.column(ws).as_ref(), row) else {
            skipped += 1;
            continue;
        };
        let mut p = Point::default();
        for (i, k) in &key_idx {
            if let Some(v) = cell_text(rows.column(*i).as_ref(), row) {
                p.tag(k, &v);
            }
        }
        for (i, k) in &fields {
            if let Some(v) = cell_value(rows.column(*i).as_ref(), row) {
                p.field(k, v);
            }
        }
        if let Some(c) = currency.and_then(|i| cell_text(rows.column(i).as_ref(), row)) {
            if let Some(e) = finopsia_udfs::currency::exponent(&c) {
                p.field("currency_exponent", Value::Int(e.into()));
            }
        }
        match p.line(table, precision.from_nanos(ts)) {
            Some(l) => out.push(l),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_line_protocol_and_tags_percent_encode_what_it_cannot_carry() {
        let mut p = Point::default();
        p.tag("acc ount", "a b,c=d\"e")
            .tag("cat", "50% \\ off\nnow")
            .tag("empty", "")
            .field("n", Value::Int(-3))
            .field("f", Value::Float(0.1))
            .field("nan", Value::Float(f64::NAN))
            .field("s", Value::Str("say \"hi\"\\\nbye".into()))
            .field("b", Value::Bool(true));
        let line = p.line("m x,y", 42).unwrap();
        assert_eq!(
            line,
            "m\\ x\\,y,acc\\ ount=a\\ b\\,c\\=d\"e,cat=50%25\\ %5C\\ off%0Anow \
             n=-3i,f=0.1,s=\"say \\\"hi\\\"\\\\\nbye\",b=true 42"
        );
        assert_eq!(decode_tag("50%25 %5C off%0Anow%0D"), "50% \\ off\nnow\r");
        assert_eq!(decode_tag("100%"), "100%", "a stray % stays");
        assert_eq!(decode_tag("%zz%2"), "%zz%2");
        assert!(
            Point::default().line("m", 1).is_none(),
            "no fields, no line"
        );
    }

    #[test]
    fn precision_floors_nanoseconds() {
        assert_eq!(Precision::Ms.from_nanos(1_999_999), 1);
        assert_eq!(Precision::S.from_nanos(-1), -1);
        assert_eq!(Precision::Us.v1(), "u");
        assert_eq!(Precision::Us.v3(), "microsecond");
    }
}
