//! Decoding and validating input files into record batches and rejects.
//!
//! A [`FileDecoder`] reads a CSV or NDJSON file in bounded memory and yields
//! [`Chunk`]s: an Arrow batch of valid records (schema [`crate::schema::INCOMING`])
//! plus the [`Reject`]s found, each with file, line, raw bytes and a
//! [`Reason`]. A [`Preset`] maps other column layouts, date formats, a default
//! currency and the amount unit onto the canonical record.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use finopsia_udfs::currency::{self, Currency};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::csv::{
    field_in, field_text, raw_span, resume_after_first_line, split_record, FieldRange,
    Malformation, SplitLimits, Step,
};
use crate::error::{io_err, Error, Result};
use crate::limits::Bounds;
use crate::money::{parse_amount, AmountError, AmountUnit};
use crate::timefmt::parse_time;

/// Machine-readable quarantine reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Broken CSV quoting, or (NDJSON) not a JSON object with the record's
    /// fields as strings, numbers or null.
    UnparsableLine,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// A NUL byte.
    NulByte,
    /// Longer than `limits.max_record_bytes`.
    RecordTooLong,
    /// A field longer than `limits.max_field_bytes`.
    FieldTooLong,
    /// A quoted CSV field running past `limits.max_quoted_bytes` or
    /// `limits.max_quoted_lines` without closing.
    QuotedFieldTooLong,
    /// A quoted CSV field still open at the end of the input.
    UnterminatedQuote,
    WrongFieldCount,
    MissingField,
    InvalidAmount,
    AmountPrecision,
    /// Over `limits.max_amount_minor` (or not representable at all).
    AmountOutOfRange,
    InvalidCurrency,
    InvalidDirection,
    InvalidDate,
    InvalidPostedAt,
    /// `transaction_date` or `posted_at` outside `limits.min_date..=max_date`.
    DateOutOfRange,
    /// Same source + transaction_id as an earlier record, different content.
    ConflictingDuplicate,
    /// A line a sink's receiver refused (an InfluxDB 4xx); `detail` holds
    /// the server's message, `raw` the line.
    SinkRejected,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::UnparsableLine => "unparsable_line",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::NulByte => "nul_byte",
            Reason::RecordTooLong => "record_too_long",
            Reason::FieldTooLong => "field_too_long",
            Reason::QuotedFieldTooLong => "quoted_field_too_long",
            Reason::UnterminatedQuote => "unterminated_quote",
            Reason::WrongFieldCount => "wrong_field_count",
            Reason::MissingField => "missing_field",
            Reason::InvalidAmount => "invalid_amount",
            Reason::AmountPrecision => "amount_precision",
            Reason::AmountOutOfRange => "amount_out_of_range",
            Reason::InvalidCurrency => "invalid_currency",
            Reason::InvalidDirection => "invalid_direction",
            Reason::InvalidDate => "invalid_date",
            Reason::InvalidPostedAt => "invalid_posted_at",
            Reason::DateOutOfRange => "date_out_of_range",
            Reason::ConflictingDuplicate => "conflicting_duplicate",
            Reason::SinkRejected => "sink_rejected",
        }
    }

    pub const ALL: [Reason; 19] = [
        Reason::UnparsableLine,
        Reason::InvalidUtf8,
        Reason::NulByte,
        Reason::RecordTooLong,
        Reason::FieldTooLong,
        Reason::QuotedFieldTooLong,
        Reason::UnterminatedQuote,
        Reason::WrongFieldCount,
        Reason::MissingField,
        Reason::InvalidAmount,
        Reason::AmountPrecision,
        Reason::AmountOutOfRange,
        Reason::InvalidCurrency,
        Reason::InvalidDirection,
        Reason::InvalidDate,
        Reason::InvalidPostedAt,
        Reason::DateOutOfRange,
        Reason::ConflictingDuplicate,
        Reason::SinkRejected,
    ];
}

/// One rejected input, bound for the `quarantine` table.
#[derive(Debug, Clone)]
pub struct Reject {
    pub source: String,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub transaction_id: Option<String>,
    pub reason: Reason,
    pub detail: String,
    pub raw: Vec<u8>,
}

/// A decoded slice of input: valid records plus rejects.
#[derive(Debug)]
pub struct Chunk {
    pub source: String,
    /// Valid records, schema [`crate::schema::INCOMING`] (without seq/ingested_at set).
    pub records: RecordBatch,
    /// Where each record came from (parallel to `records`), kept so a
    /// conflicting duplicate can be quarantined with its original text.
    pub positions: Positions,
    pub rejects: Vec<Reject>,
    /// Bytes of input consumed so far (for progress).
    pub bytes_read: u64,
    /// The records' categorization, computed ahead on the decoder thread
    /// (see the engine's `categorize_ahead`); `None` to evaluate in the
    /// transform query.
    pub prepared: Option<finopsia_udfs::Prepared>,
}

/// The incoming columns the built-in transform's `categorize()` call takes,
/// in argument order.
pub const CATEGORIZE_COLUMNS: [&str; 6] = [
    "description",
    "amount_minor",
    "currency",
    "direction",
    "account_id",
    "category",
];

impl Chunk {
    /// A chunk with no records and no rejects (an empty message, say), still
    /// worth sending so that its position is committed.
    pub fn empty(source: &str) -> Chunk {
        Chunk {
            source: source.to_string(),
            records: RecordBatch::new_empty(crate::schema::INCOMING.clone()),
            positions: Positions::default(),
            rejects: Vec::new(),
            bytes_read: 0,
            prepared: None,
        }
    }

    /// Categorizes the records ahead of their micro-batch (on the decoder's
    /// thread, overlapping the engine's commit of the previous one) into
    /// [`Chunk::prepared`].
    pub fn prepare(&mut self, models: &finopsia_udfs::ModelHandle) -> Result<()> {
        let r = &self.records;
        let inputs = CATEGORIZE_COLUMNS
            .iter()
            .map(|name| {
                r.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| Error::Config(format!("incoming column {name} missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        // On all cores: the engine is mostly one thread, and the decoder
        // waits for it whenever it is ahead.
        self.prepared = Some(models.prepare(inputs, true)?);
        Ok(())
    }
}

/// Where the valid records of a chunk came from: one input, and each
/// record's line and byte span. The raw bytes are only needed to quarantine a
/// conflicting duplicate (rare), so for files they are read back from the file
/// on demand instead of being copied for every record.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    pub file: Option<Arc<str>>,
    lines: Vec<u64>,
    /// (offset, length): in the file when `readable`, else in `inline`.
    spans: Vec<(u64, u32)>,
    readable: Option<std::path::PathBuf>,
    inline: Vec<u8>,
}

impl Positions {
    pub fn new(file: Option<Arc<str>>, readable: Option<std::path::PathBuf>) -> Positions {
        Positions {
            file,
            readable,
            ..Default::default()
        }
    }

    /// Adds a record found at byte `offset` of the input.
    pub fn push(&mut self, line: u64, offset: u64, raw: &[u8]) {
        self.lines.push(line);
        if self.readable.is_some() {
            self.spans.push((offset, raw.len() as u32));
        } else {
            self.spans
                .push((self.inline.len() as u64, raw.len() as u32));
            self.inline.extend_from_slice(raw);
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn line(&self, i: usize) -> u64 {
        self.lines[i]
    }

    /// The record's raw bytes (empty if the file can no longer be read).
    pub fn raw(&self, i: usize) -> Vec<u8> {
        let (offset, len) = self.spans[i];
        match &self.readable {
            None => self.inline[offset as usize..offset as usize + len as usize].to_vec(),
            Some(path) => {
                use std::io::{Seek, SeekFrom};
                let mut buf = vec![0; len as usize];
                let ok = File::open(path)
                    .and_then(|mut f| {
                        f.seek(SeekFrom::Start(offset))
                            .and_then(|_| f.read_exact(&mut buf))
                    })
                    .is_ok();
                if ok {
                    buf
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// Guesses from the extension: `.csv` → CSV; `.ndjson`, `.jsonl`, `.json` → NDJSON.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// The canonical record fields, in the canonical CSV header order.
pub const FIELDS: [&str; 10] = [
    "transaction_id",
    "account_id",
    "amount",
    "currency",
    "direction",
    "description",
    "transaction_date",
    "posted_at",
    "category",
    "counterparty",
];
const F_TXID: usize = 0;
const F_ACCOUNT: usize = 1;
const F_AMOUNT: usize = 2;
const F_CURRENCY: usize = 3;
const F_DIRECTION: usize = 4;
const F_DESCRIPTION: usize = 5;
const F_DATE: usize = 6;
const F_POSTED: usize = 7;
const F_CATEGORY: usize = 8;
const F_COUNTERPARTY: usize = 9;
/// Fields a CSV header must have (currency may come from a preset default).
const REQUIRED: [usize; 7] = [
    F_TXID,
    F_ACCOUNT,
    F_AMOUNT,
    F_CURRENCY,
    F_DIRECTION,
    F_DESCRIPTION,
    F_DATE,
];

/// How to read a non-canonical input: column names, date format, default
/// currency and amount unit. Configured under `[presets.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Canonical field name → column name in the input header (case-insensitive).
    /// Unmapped fields use their canonical name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// chrono strftime format for `transaction_date` and `posted_at`
    /// (e.g. `%m/%d/%Y %H:%M`); unset = ISO 8601 date or RFC 3339.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Currency used when the input has no currency column or the cell is empty.
    #[serde(default)]
    pub default_currency: Option<String>,
    /// `major` (`12.34`) or `minor` (`1234`) units in the amount column.
    #[serde(default)]
    pub amount_unit: AmountUnit,
}

impl Preset {
    /// The built-in presets: `canonical` and `finopsia-seed` (the public sample:
    /// M/D/YYYY H:MM dates, no currency column, NGN, major units).
    pub fn builtin(name: &str) -> Option<Preset> {
        match name {
            "canonical" => Some(Preset::default()),
            "finopsia-seed" => Some(Preset {
                columns: BTreeMap::new(),
                date_format: Some("%m/%d/%Y %H:%M".into()),
                default_currency: Some("NGN".into()),
                amount_unit: AmountUnit::Major,
            }),
            _ => None,
        }
    }

    pub const BUILTIN_NAMES: [&'static str; 2] = ["canonical", "finopsia-seed"];

    /// Checks field names, the date format and the default currency.
    pub fn validate(&self, name: &str) -> Result<()> {
        let err = |m: String| Err(Error::Config(format!("preset {name:?}: {m}")));
        for key in self.columns.keys() {
            if !FIELDS.contains(&key.as_str()) {
                return err(format!(
                    "unknown field {key:?} in columns (fields: {})",
                    FIELDS.join(", ")
                ));
            }
        }
        if let Some(fmt) = &self.date_format {
            if chrono::format::StrftimeItems::new(fmt).parse().is_err() {
                return err(format!("invalid date_format {fmt:?}"));
            }
        }
        if let Some(c) = &self.default_currency {
            if currency::lookup(c).is_none() {
                return err(format!(
                    "default_currency {c:?} is not an ISO 4217 code with minor units"
                ));
            }
        }
        Ok(())
    }
}

/// Validation settings derived from a preset.
#[derive(Debug, Clone)]
struct Spec {
    date_format: Option<String>,
    default_currency: Option<Currency>,
    amount_unit: AmountUnit,
    bounds: Bounds,
}

impl Spec {
    fn new(preset: &Preset, bounds: Bounds) -> Spec {
        Spec {
            bounds,
            date_format: preset.date_format.clone(),
            default_currency: preset
                .default_currency
                .as_deref()
                .and_then(currency::lookup),
            amount_unit: preset.amount_unit,
        }
    }
}

/// A record that passed validation, borrowing its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid<'a> {
    pub transaction_id: &'a str,
    pub account_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub inflow: bool,
    pub description: &'a str,
    pub event_time: i64,
    pub posted_at: Option<i64>,
    pub category: Option<&'a str>,
    pub counterparty: Option<&'a str>,
}

impl Valid<'_> {
    /// A stable 64-bit hash of the record's content (everything but its key),
    /// used to tell exact re-deliveries from conflicting versions.
    pub fn content_hash(&self) -> i64 {
        self.content_hash_with(&mut Vec::with_capacity(128))
    }

    /// [`Valid::content_hash`] using a caller's scratch buffer (no allocation).
    pub fn content_hash_with(&self, buf: &mut Vec<u8>) -> i64 {
        buf.clear();
        let mut s = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
            buf.extend_from_slice(b);
        };
        s(self.account_id.as_bytes());
        s(&self.amount_minor.to_le_bytes());
        s(self.currency.as_bytes());
        s(&[u8::from(self.inflow)]);
        s(self.description.as_bytes());
        s(&self.event_time.to_le_bytes());
        match self.posted_at {
            Some(p) => s(&p.to_le_bytes()),
            None => s(b"\xff"),
        }
        s(self.category.map_or(b"\xff".as_slice(), |c| c.as_bytes()));
        s(self
            .counterparty
            .map_or(b"\xff".as_slice(), |c| c.as_bytes()));
        xxhash_rust::xxh3::xxh3_64(buf) as i64
    }
}

/// Validates the text of one record's fields (`None` = column/field absent).
fn validate<'a>(
    f: &[Option<&'a str>; 10],
    spec: &Spec,
) -> std::result::Result<Valid<'a>, (Reason, String)> {
    let required = |i: usize| -> std::result::Result<&'a str, (Reason, String)> {
        match f[i] {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err((Reason::MissingField, format!("{} is empty", FIELDS[i]))),
        }
    };
    let transaction_id = required(F_TXID)?;
    let account_id = required(F_ACCOUNT)?;
    let amount_text = required(F_AMOUNT)?;
    let direction = required(F_DIRECTION)?;
    let date_text = required(F_DATE)?;
    let currency = match f[F_CURRENCY].filter(|c| !c.is_empty()) {
        Some(code) => currency::lookup(code).ok_or_else(|| {
            (
                Reason::InvalidCurrency,
                format!("{code:?} is not an ISO 4217 code with minor units"),
            )
        })?,
        None => spec
            .default_currency
            .ok_or_else(|| (Reason::MissingField, "currency is empty".to_string()))?,
    };
    let amount =
        parse_amount(amount_text, spec.amount_unit, currency.exponent).map_err(|e| match e {
            AmountError::Syntax => (
                Reason::InvalidAmount,
                format!("{amount_text:?} is not a non-negative decimal amount"),
            ),
            AmountError::Precision => (
                Reason::AmountPrecision,
                format!(
                    "{amount_text:?} has more than {} fractional digits for {}",
                    currency.exponent, currency.code
                ),
            ),
            AmountError::Range => (
                Reason::AmountOutOfRange,
                format!("{amount_text:?} is out of range"),
            ),
        })?;
    if amount > spec.bounds.max_amount_minor {
        return Err((
            Reason::AmountOutOfRange,
            format!(
                "{amount_text:?} {} is over the limit of {} minor units (limits.max_amount_minor)",
                currency.code, spec.bounds.max_amount_minor
            ),
        ));
    }
    let inflow = if direction.eq_ignore_ascii_case("inflow") {
        true
    } else if direction.eq_ignore_ascii_case("outflow") {
        false
    } else {
        return Err((
            Reason::InvalidDirection,
            format!("{direction:?} is neither inflow nor outflow"),
        ));
    };
    let fmt = spec.date_format.as_deref();
    let event_time = parse_time(date_text, fmt).ok_or_else(|| {
        (
            Reason::InvalidDate,
            format!(
                "transaction_date {date_text:?} does not match {}",
                fmt.unwrap_or("ISO 8601 date or RFC 3339")
            ),
        )
    })?;
    let in_range = |field: &str, text: &str, t: i64| {
        if t < spec.bounds.min_time_us || t > spec.bounds.max_time_us {
            Err((
                Reason::DateOutOfRange,
                format!(
                    "{field} {text:?} is outside {}..={} (limits.min_date, limits.max_date)",
                    crate::timefmt::format_micros(spec.bounds.min_time_us),
                    crate::timefmt::format_micros(spec.bounds.max_time_us)
                ),
            ))
        } else {
            Ok(())
        }
    };
    in_range("transaction_date", date_text, event_time)?;
    let posted_at = match f[F_POSTED].filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(parse_time(p, fmt).ok_or_else(|| {
            (
                Reason::InvalidPostedAt,
                format!(
                    "posted_at {p:?} does not match {}",
                    fmt.unwrap_or("ISO 8601 date or RFC 3339")
                ),
            )
        })?),
    };
    if let (Some(p), Some(t)) = (f[F_POSTED], posted_at) {
        in_range("posted_at", p, t)?;
    }
    Ok(Valid {
        transaction_id,
        account_id,
        amount_minor: if inflow { amount } else { -amount },
        currency: currency.code,
        inflow,
        description: f[F_DESCRIPTION].unwrap_or(""),
        event_time,
        posted_at,
        category: f[F_CATEGORY].filter(|c| !c.is_empty()),
        counterparty: f[F_COUNTERPARTY].filter(|c| !c.is_empty()),
    })
}

/// A row's outcome: appended, or rejected with reason, detail and transaction id.
type RowOutcome = std::result::Result<(), (Reason, String, Option<String>)>;

/// Validates one record's fields and appends it to `builder` if valid.
fn validate_into(
    fields: &[Option<&str>; 10],
    spec: &Spec,
    source: &str,
    builder: &mut Builder,
) -> RowOutcome {
    match validate(fields, spec) {
        Ok(v) => {
            builder.append(source, &v);
            Ok(())
        }
        Err((reason, detail)) => Err((reason, detail, fields[F_TXID].map(str::to_string))),
    }
}

/// Column builders for the incoming schema.
struct Builder {
    source: StringBuilder,
    transaction_id: StringBuilder,
    account_id: StringBuilder,
    amount_minor: Int64Builder,
    currency: StringBuilder,
    direction: StringBuilder,
    description: StringBuilder,
    counterparty: StringBuilder,
    category: StringBuilder,
    event_time: TimestampMicrosecondBuilder,
    posted_at: TimestampMicrosecondBuilder,
    content_hash: Int64Builder,
    len: usize,
    scratch: Vec<u8>,
}

impl Builder {
    fn new(cap: usize) -> Builder {
        let s = || StringBuilder::with_capacity(cap, cap * 8);
        let t = || TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC");
        Builder {
            source: s(),
            transaction_id: s(),
            account_id: s(),
            amount_minor: Int64Builder::with_capacity(cap),
            currency: s(),
            direction: s(),
            description: StringBuilder::with_capacity(cap, cap * 24),
            counterparty: s(),
            category: s(),
            event_time: t(),
            posted_at: t(),
            content_hash: Int64Builder::with_capacity(cap),
            len: 0,
            scratch: Vec::with_capacity(256),
        }
    }

    fn append(&mut self, source: &str, v: &Valid<'_>) {
        self.source.append_value(source);
        self.transaction_id.append_value(v.transaction_id);
        self.account_id.append_value(v.account_id);
        self.amount_minor.append_value(v.amount_minor);
        self.currency.append_value(v.currency);
        self.direction
            .append_value(if v.inflow { "inflow" } else { "outflow" });
        self.description.append_value(v.description);
        self.counterparty.append_option(v.counterparty);
        self.category.append_option(v.category);
        self.event_time.append_value(v.event_time);
        self.posted_at.append_option(v.posted_at);
        let hash = v.content_hash_with(&mut self.scratch);
        self.content_hash.append_value(hash);
        self.len += 1;
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let n = self.len;
        let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        ingested.append_nulls(n);
        let mut seq = Int64Builder::with_capacity(n);
        seq.append_nulls(n);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.source.finish()),
            Arc::new(self.transaction_id.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.amount_minor.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.direction.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.counterparty.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.posted_at.finish()),
            Arc::new(self.content_hash.finish()),
            Arc::new(ingested.finish()),
            Arc::new(seq.finish()),
        ];
        Ok(RecordBatch::try_new(crate::schema::INCOMING.clone(), cols)?)
    }
}

const BLOCK: usize = 4 << 20;

/// Reads one input file and yields chunks of validated records and rejects.
pub struct FileDecoder {
    /// Bytes read at a time.
    block: usize,
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    line: u64,
    bytes_read: u64,
    format: Format,
    /// CSV: input column index of each canonical field.
    columns: [Option<usize>; 10],
    n_columns: usize,
    spec: Spec,
    source: String,
    file: Arc<str>,
    fields: Vec<FieldRange>,
    /// Path to read raw records back from (None for arbitrary readers).
    readable: Option<std::path::PathBuf>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    bounds: Bounds,
    split: SplitLimits,
    /// CSV header names (for messages).
    header: Vec<String>,
    /// Discarding the rest of an over-long line (already quarantined) up to
    /// its line break, without buffering it.
    skipping: bool,
}

impl FileDecoder {
    /// Opens a file; for CSV reads and maps the header (error if a required
    /// column is missing).
    pub fn open(
        path: &Path,
        format: Format,
        preset: &Preset,
        bounds: Bounds,
        source: &str,
    ) -> Result<FileDecoder> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut d = Self::from_reader(
            Box::new(file),
            &path.display().to_string(),
            format,
            preset,
            bounds,
            source,
        )?;
        d.readable = Some(path.to_path_buf());
        Ok(d)
    }

    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        name: &str,
        format: Format,
        preset: &Preset,
        bounds: Bounds,
        source: &str,
    ) -> Result<FileDecoder> {
        Self::with_block(reader, name, format, preset, bounds, source, BLOCK)
    }

    /// [`FileDecoder::from_reader`] reading `block` bytes at a time (tests
    /// use tiny blocks to show that the outcome does not depend on it).
    #[doc(hidden)]
    pub fn with_block(
        reader: Box<dyn Read + Send>,
        name: &str,
        format: Format,
        preset: &Preset,
        bounds: Bounds,
        source: &str,
        block: usize,
    ) -> Result<FileDecoder> {
        let mut d = FileDecoder {
            block: block.max(1),
            reader,
            buf: Vec::with_capacity(block.max(1)),
            pos: 0,
            eof: false,
            line: 1,
            bytes_read: 0,
            format,
            columns: [None; 10],
            n_columns: 0,
            spec: Spec::new(preset, bounds),
            source: source.to_string(),
            file: Arc::from(name),
            fields: Vec::with_capacity(16),
            readable: None,
            buf_offset: 0,
            bounds,
            split: SplitLimits {
                max_record: bounds.max_record_bytes,
                max_quoted: bounds.max_quoted_bytes,
                max_quoted_lines: bounds.max_quoted_lines,
            },
            header: Vec::new(),
            skipping: false,
        };
        d.fill()?;
        if d.buf.starts_with(b"\xef\xbb\xbf") {
            d.pos = 3;
        }
        if format == Format::Csv {
            d.read_header(preset)?;
        }
        Ok(d)
    }

    /// Bytes of input buffer held (to show that memory stays bounded).
    #[doc(hidden)]
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    fn input_err(&self, message: String) -> Error {
        Error::Input {
            file: self.file.to_string(),
            message,
        }
    }

    /// Reads more input, keeping unconsumed bytes. Returns false at EOF.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        let want = self.block.max(old);
        // Appended without zero-filling the block first: a small input (a
        // broker message, a request body) costs its own size, not a block.
        self.buf.reserve(want);
        let got = (&mut self.reader)
            .take(want as u64)
            .read_to_end(&mut self.buf)
            .map_err(io_err(self.file.to_string()))?;
        if got < want {
            self.eof = true;
        }
        Ok(got > 0)
    }

    fn read_header(&mut self, preset: &Preset) -> Result<()> {
        let header: Vec<String> = loop {
            if self.pos >= self.buf.len() {
                if !self.fill()? {
                    return Err(self.input_err("empty file: no CSV header".into()));
                }
                continue;
            }
            match split_record(&self.buf, self.pos, self.eof, &self.split, &mut self.fields) {
                Step::NeedMore => {
                    self.fill()?;
                }
                Step::Blank { end } => {
                    self.pos = end;
                    self.line += 1;
                }
                Step::Malformed(m) => {
                    return Err(self.input_err(format!("unreadable CSV header: {}", m.message())));
                }
                Step::Record { end, newlines } => {
                    let names = self
                        .fields
                        .iter()
                        .map(|f| field_text(&self.buf, f).map(|t| t.to_ascii_lowercase()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| self.input_err("CSV header is not UTF-8".into()))?;
                    self.pos = end;
                    self.line += 1 + newlines as u64;
                    break names;
                }
            }
        };
        self.n_columns = header.len();
        self.header = header.clone();
        let mut missing = Vec::new();
        for (i, field) in FIELDS.iter().enumerate() {
            let wanted = preset
                .columns
                .get(*field)
                .map(|c| c.trim().to_ascii_lowercase())
                .unwrap_or_else(|| field.to_string());
            self.columns[i] = header.iter().position(|h| *h == wanted);
            let optional_currency = i == F_CURRENCY && self.spec.default_currency.is_some();
            if self.columns[i].is_none() && REQUIRED.contains(&i) && !optional_currency {
                missing.push(wanted);
            }
        }
        if !missing.is_empty() {
            return Err(self.input_err(format!(
                "CSV header lacks required column(s) {} (header: {}); use --preset or a [presets] mapping",
                missing.join(", "),
                header.join(",")
            )));
        }
        Ok(())
    }

    /// Decodes up to `max_rows` more input lines; `None` at end of input.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>> {
        let mut builder = Builder::new(max_rows.min(1 << 16));
        let mut rejects = Vec::new();
        let mut positions = Positions::new(Some(self.file.clone()), self.readable.clone());
        let mut rows = 0;
        while rows < max_rows {
            if self.pos >= self.buf.len() {
                if !self.fill()? {
                    break;
                }
                continue;
            }
            if self.skipping {
                // The rest of an over-long line, already quarantined.
                match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    Some(off) => {
                        self.advance(self.pos + off + 1, 1);
                        self.skipping = false;
                    }
                    None => self.advance(self.buf.len(), 0),
                }
                continue;
            }
            let progressed = match self.format {
                Format::Csv => self.csv_row(&mut builder, &mut rejects, &mut positions)?,
                Format::Ndjson => self.json_row(&mut builder, &mut rejects, &mut positions)?,
            };
            match progressed {
                Some(true) => rows += 1,
                Some(false) => {}
                None => {
                    self.fill()?;
                }
            }
        }
        if rows == 0 && self.eof && self.pos >= self.buf.len() {
            return Ok(None);
        }
        Ok(Some(Chunk {
            source: self.source.clone(),
            records: builder.finish()?,
            positions,
            rejects,
            bytes_read: self.bytes_read,
            prepared: None,
        }))
    }

    fn reject(
        &self,
        line: u64,
        raw: &[u8],
        reason: Reason,
        detail: String,
        txid: Option<&str>,
    ) -> Reject {
        Reject {
            source: self.source.clone(),
            file: Some(self.file.to_string()),
            line: Some(line),
            transaction_id: txid.map(str::to_string),
            reason,
            detail,
            raw: raw.to_vec(),
        }
    }

    /// One CSV step: Some(true) = a row (valid or rejected), Some(false) =
    /// blank line, None = need more input.
    fn csv_row(
        &mut self,
        builder: &mut Builder,
        rejects: &mut Vec<Reject>,
        positions: &mut Positions,
    ) -> Result<Option<bool>> {
        let start = self.pos;
        let line = self.line;
        let step = split_record(&self.buf, start, self.eof, &self.split, &mut self.fields);
        let (end, newlines) = match step {
            Step::NeedMore => return Ok(None),
            Step::Blank { end } => {
                self.advance(end, 1);
                return Ok(Some(false));
            }
            Step::Malformed(m) => {
                let (reason, detail) = match m {
                    Malformation::Syntax(message) => (Reason::UnparsableLine, message.to_string()),
                    Malformation::QuotedTooLong => (
                        Reason::QuotedFieldTooLong,
                        format!(
                            "a quoted field runs past {} bytes or {} line breaks without closing (limits.max_quoted_bytes, limits.max_quoted_lines)",
                            self.bounds.max_quoted_bytes, self.bounds.max_quoted_lines
                        ),
                    ),
                    Malformation::Unterminated => (
                        Reason::UnterminatedQuote,
                        "a quoted field is not closed before the end of the input".to_string(),
                    ),
                    Malformation::TooLong => (Reason::RecordTooLong, self.too_long_detail()),
                };
                return Ok(self.resync(start, line, reason, detail, rejects));
            }
            Step::Record { end, newlines } => (end, newlines),
        };
        if raw_span(&self.buf, start, end).len() > self.bounds.max_record_bytes {
            // Only at the end of the input without a final line break.
            let detail = self.too_long_detail();
            return Ok(self.resync(start, line, Reason::RecordTooLong, detail, rejects));
        }
        if newlines > 0 && self.fields.len() != self.n_columns {
            // A quoted field ran across lines into what are most likely
            // the next records: take only the first line as the bad one.
            let detail = format!(
                "expected {} fields, found {} in a record whose quoted field spans {} more line(s); resuming at the next line",
                self.n_columns,
                self.fields.len(),
                newlines
            );
            return Ok(self.resync(start, line, Reason::WrongFieldCount, detail, rejects));
        }
        let outcome = self.csv_outcome(start, end, builder);
        let raw = raw_span(&self.buf, start, end);
        self.record_outcome(outcome, line, start, raw, rejects, positions);
        self.advance(end, 1 + newlines as u64);
        Ok(Some(true))
    }

    /// Checks and validates one split CSV record (`self.fields`).
    fn csv_outcome(&self, start: usize, end: usize, builder: &mut Builder) -> RowOutcome {
        let bytes = &self.buf[start..end];
        if memchr::memchr(0, bytes).is_some() {
            return Err((
                Reason::NulByte,
                "the record contains a NUL byte".into(),
                None,
            ));
        }
        let Ok(rec) = std::str::from_utf8(bytes) else {
            return Err((
                Reason::InvalidUtf8,
                "the record is not valid UTF-8".into(),
                None,
            ));
        };
        if self.fields.len() != self.n_columns {
            return Err((
                Reason::WrongFieldCount,
                format!(
                    "expected {} fields, found {}",
                    self.n_columns,
                    self.fields.len()
                ),
                None,
            ));
        }
        if let Some((i, f)) = self
            .fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.end - f.start > self.bounds.max_field_bytes)
        {
            return Err((
                Reason::FieldTooLong,
                format!(
                    "field {} ({}) is {} bytes, over the limit of {} (limits.max_field_bytes)",
                    i + 1,
                    self.header.get(i).map_or("?", String::as_str),
                    f.end - f.start,
                    self.bounds.max_field_bytes
                ),
                None,
            ));
        }
        let mut texts: [Option<Cow<'_, str>>; 10] = Default::default();
        for (i, col) in self.columns.iter().enumerate() {
            if let Some(c) = col {
                texts[i] = Some(field_in(rec, start, &self.fields[*c]));
            }
        }
        let refs: [Option<&str>; 10] = std::array::from_fn(|i| texts[i].as_deref());
        validate_into(&refs, &self.spec, &self.source, builder)
    }

    fn too_long_detail(&self) -> String {
        format!(
            "the record is longer than {} bytes (limits.max_record_bytes); its first {} bytes are kept",
            self.bounds.max_record_bytes, self.bounds.max_record_bytes
        )
    }

    /// Quarantines `buf[start..end]` (without its line break, at most
    /// `max_record_bytes` of it).
    fn reject_at(
        &self,
        start: usize,
        end: usize,
        line: u64,
        reason: Reason,
        detail: String,
        rejects: &mut Vec<Reject>,
    ) {
        let raw = raw_span(&self.buf, start, end);
        let raw = &raw[..raw.len().min(self.bounds.max_record_bytes)];
        rejects.push(self.reject(line, raw, reason, detail, None));
    }

    /// Quarantines the first line of a record that cannot be split and
    /// resumes at the next line. An over-long first line is kept up to
    /// `max_record_bytes` and the rest of it is skipped without buffering.
    /// `None`: the line's end is not in the buffer yet.
    fn resync(
        &mut self,
        start: usize,
        line: u64,
        reason: Reason,
        detail: String,
        rejects: &mut Vec<Reject>,
    ) -> Option<bool> {
        match resume_after_first_line(&self.buf, start, self.eof) {
            Some(end) => {
                self.reject_at(start, end, line, reason, detail, rejects);
                self.advance(end, 1);
            }
            None if self.buf.len() - start > self.bounds.max_record_bytes => {
                let end = self.buf.len();
                self.reject_at(start, end, line, reason, detail, rejects);
                self.advance(end, 0);
                self.skipping = true;
            }
            None => return None,
        }
        Some(true)
    }

    /// Records a row's outcome: its position if valid, else a reject.
    fn record_outcome(
        &self,
        outcome: RowOutcome,
        line: u64,
        start: usize,
        raw: &[u8],
        rejects: &mut Vec<Reject>,
        positions: &mut Positions,
    ) {
        match outcome {
            Ok(()) => positions.push(line, self.buf_offset + start as u64, raw),
            Err((reason, detail, txid)) => {
                rejects.push(self.reject(line, raw, reason, detail, txid.as_deref()));
            }
        }
    }

    fn advance(&mut self, end: usize, lines: u64) {
        self.bytes_read += (end - self.pos) as u64;
        self.pos = end;
        self.line += lines;
    }

    fn json_row(
        &mut self,
        builder: &mut Builder,
        rejects: &mut Vec<Reject>,
        positions: &mut Positions,
    ) -> Result<Option<bool>> {
        let start = self.pos;
        let line = self.line;
        let max = self.bounds.max_record_bytes;
        let end = match memchr::memchr(b'\n', &self.buf[start..]) {
            Some(off) => start + off + 1,
            None if self.eof => self.buf.len(),
            None if self.buf.len() - start > max => {
                let detail = self.too_long_detail();
                return Ok(self.resync(start, line, Reason::RecordTooLong, detail, rejects));
            }
            None => return Ok(None),
        };
        let raw = raw_span(&self.buf, start, end);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            self.advance(end, 1);
            return Ok(Some(false));
        }
        if raw.len() > max {
            let detail = self.too_long_detail();
            self.reject_at(start, end, line, Reason::RecordTooLong, detail, rejects);
            self.advance(end, 1);
            return Ok(Some(true));
        }
        // UTF-8 is checked once here; serde then parses the checked text.
        let text = std::str::from_utf8(raw);
        let outcome = if memchr::memchr(0, raw).is_some() {
            Err((Reason::NulByte, "the line contains a NUL byte".into(), None))
        } else if text.is_err() {
            Err((
                Reason::InvalidUtf8,
                "the line is not valid UTF-8".into(),
                None,
            ))
        } else if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            // serde would also read a struct from an array, in field order.
            Err((Reason::UnparsableLine, "not a JSON object".into(), None))
        } else {
            match serde_json::from_str::<JsonRecord<'_>>(text.unwrap_or_default()) {
                Err(e) => Err((
                    Reason::UnparsableLine,
                    format!("invalid JSON object: {e}"),
                    None,
                )),
                Ok(rec) => match rec.texts(self.bounds.max_field_bytes) {
                    Err((reason, detail)) => Err((reason, detail, None)),
                    Ok(texts) => {
                        let refs: [Option<&str>; 10] =
                            std::array::from_fn(|i| texts[i].as_deref().map(str::trim));
                        validate_into(&refs, &self.spec, &self.source, builder)
                    }
                },
            }
        };
        self.record_outcome(outcome, line, start, raw, rejects, positions);
        self.advance(end, 1);
        Ok(Some(true))
    }
}

/// One NDJSON object with canonical field names. Values may be strings,
/// numbers (kept as their exact JSON text, so `12.34` stays exact) or null.
#[derive(Deserialize)]
struct JsonRecord<'a> {
    #[serde(borrow, default)]
    transaction_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    account_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    currency: Option<&'a RawValue>,
    #[serde(borrow, default)]
    direction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(borrow, default)]
    transaction_date: Option<&'a RawValue>,
    #[serde(borrow, default)]
    posted_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    category: Option<&'a RawValue>,
    #[serde(borrow, default)]
    counterparty: Option<&'a RawValue>,
}

impl<'a> JsonRecord<'a> {
    fn texts(
        &self,
        max_field_bytes: usize,
    ) -> std::result::Result<[Option<Cow<'a, str>>; 10], (Reason, String)> {
        let all = [
            self.transaction_id,
            self.account_id,
            self.amount,
            self.currency,
            self.direction,
            self.description,
            self.transaction_date,
            self.posted_at,
            self.category,
            self.counterparty,
        ];
        let mut out: [Option<Cow<'a, str>>; 10] = Default::default();
        for (i, v) in all.iter().enumerate() {
            let Some(raw) = v else { continue };
            let text = raw.get();
            let unparsable = |m: String| (Reason::UnparsableLine, m);
            out[i] = match text.as_bytes().first() {
                Some(b'"') => Some(
                    serde_json::from_str::<Cow<'a, str>>(text)
                        .map_err(|e| unparsable(format!("{}: {e}", FIELDS[i])))?,
                ),
                Some(b'n') => None,
                Some(b'-' | b'0'..=b'9') => Some(Cow::Borrowed(text)),
                _ => {
                    return Err(unparsable(format!(
                        "{} must be a string, number or null",
                        FIELDS[i]
                    )))
                }
            };
            if let Some(t) = &out[i] {
                if t.len() > max_field_bytes {
                    return Err((
                        Reason::FieldTooLong,
                        format!(
                            "{} is {} bytes, over the limit of {max_field_bytes} (limits.max_field_bytes)",
                            FIELDS[i],
                            t.len()
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};

    fn decode(text: &str, format: Format, preset: &Preset) -> (RecordBatch, Vec<Reject>) {
        let mut d = FileDecoder::from_reader(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            "t.csv",
            format,
            preset,
            Bounds::default(),
            "test",
        )
        .unwrap();
        let chunk = d.next_chunk(1000).unwrap().unwrap();
        assert!(d.next_chunk(1000).unwrap().is_none());
        (chunk.records, chunk.rejects)
    }

    const HEADER: &str =
        "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";

    #[test]
    fn canonical_rows_and_signs() {
        let text = format!(
            "\u{feff}{HEADER}t1,acc,12.34,usd,INFLOW,Sale,2024-01-02\r\nt2,acc,5,JPY,outflow,,2024-01-02T10:00:00+01:00\r\n"
        );
        let (batch, rejects) = decode(&text, Format::Csv, &Preset::default());
        assert!(rejects.is_empty(), "{rejects:?}");
        let amounts = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(amounts.values(), &[1234, -5]);
        assert_eq!(batch.column(4).as_string::<i32>().value(0), "USD");
        assert_eq!(batch.column(6).as_string::<i32>().value(1), "");
    }

    #[test]
    fn each_rule_has_its_reason() {
        let rows = [
            (
                "t1,acc,1.00,USD,inflow,x,2024-01-01,extra",
                Reason::WrongFieldCount,
            ),
            (
                "t2,acc,1.001,USD,inflow,x,2024-01-01",
                Reason::AmountPrecision,
            ),
            (
                "t3,acc,1,000.00,USD,inflow,x,2024-01-01",
                Reason::WrongFieldCount,
            ),
            (
                "t4,acc,-1.00,USD,inflow,x,2024-01-01",
                Reason::InvalidAmount,
            ),
            (
                "t5,acc,1.00,ZZZ,inflow,x,2024-01-01",
                Reason::InvalidCurrency,
            ),
            (
                "t6,acc,1.00,USD,sideways,x,2024-01-01",
                Reason::InvalidDirection,
            ),
            ("t7,acc,1.00,USD,inflow,x,01/02/2024", Reason::InvalidDate),
            (",acc,1.00,USD,inflow,x,2024-01-01", Reason::MissingField),
            (
                "t9,acc,99999999999999999999,USD,inflow,x,2024-01-01",
                Reason::AmountOutOfRange,
            ),
            (
                "t10,acc,1\"0,USD,inflow,x,2024-01-01",
                Reason::UnparsableLine,
            ),
        ];
        let mut text = HEADER.to_string();
        for (row, _) in &rows {
            text.push_str(row);
            text.push('\n');
        }
        text.push_str("ok,acc,1.00,USD,inflow,x,2024-01-01\n");
        let (batch, rejects) = decode(&text, Format::Csv, &Preset::default());
        assert_eq!(batch.num_rows(), 1);
        let got: Vec<Reason> = rejects.iter().map(|r| r.reason).collect();
        let want: Vec<Reason> = rows.iter().map(|(_, r)| *r).collect();
        assert_eq!(got, want);
        assert_eq!(rejects[0].line, Some(2));
        assert_eq!(rejects[0].raw, rows[0].0.as_bytes());
    }

    #[test]
    fn invalid_utf8_is_quarantined_not_fatal() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(
            b"t1,acc,1.00,USD,inflow,caf\xe9,2024-01-01\nt2,acc,1.00,USD,inflow,ok,2024-01-01\n",
        );
        let mut d = FileDecoder::from_reader(
            Box::new(std::io::Cursor::new(bytes)),
            "x",
            Format::Csv,
            &Preset::default(),
            Bounds::default(),
            "s",
        )
        .unwrap();
        let c = d.next_chunk(10).unwrap().unwrap();
        assert_eq!(c.records.num_rows(), 1);
        assert_eq!(c.rejects[0].reason, Reason::InvalidUtf8);
    }

    #[test]
    fn seed_preset_reads_the_public_sample_shape() {
        let text = "transaction_id,account_id,description,category,amount,direction,transaction_date,posted_at\n1,1,Marketing Materials,Marketing,34431,outflow,1/2/2020 0:00,1/2/2020 0:00\n";
        let (batch, rejects) = decode(
            text,
            Format::Csv,
            &Preset::builtin("finopsia-seed").unwrap(),
        );
        assert!(rejects.is_empty(), "{rejects:?}");
        let amounts = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(amounts.value(0), -3_443_100);
        assert_eq!(batch.column(4).as_string::<i32>().value(0), "NGN");
        assert_eq!(batch.column(8).as_string::<i32>().value(0), "Marketing");
    }

    #[test]
    fn missing_header_column_is_an_input_error() {
        let text = "transaction_id,account_id,amount,direction,description,transaction_date\n";
        let err = FileDecoder::from_reader(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            "x.csv",
            Format::Csv,
            &Preset::default(),
            Bounds::default(),
            "s",
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("currency"), "{err}");
    }

    #[test]
    fn ndjson_exact_numbers_and_nulls() {
        let text = "{\"transaction_id\":7,\"account_id\":\"a\",\"amount\":0.10,\"currency\":\"EUR\",\"direction\":\"inflow\",\"description\":null,\"transaction_date\":\"2024-05-01\"}\n\nnot json\n{\"transaction_id\":\"8\",\"account_id\":\"a\",\"amount\":\"1.5\",\"currency\":\"EUR\",\"direction\":\"outflow\",\"transaction_date\":\"2024-05-01\",\"category\":\"\"}\n";
        let (batch, rejects) = decode(text, Format::Ndjson, &Preset::default());
        assert_eq!(batch.num_rows(), 2);
        let amounts = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(amounts.values(), &[10, -150]);
        assert!(batch.column(8).is_null(1), "empty category means none");
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, Some(3));
    }

    #[test]
    fn content_hash_distinguishes_content() {
        let spec = Spec::new(&Preset::default(), Bounds::default());
        let base = [
            "t",
            "a",
            "1.00",
            "USD",
            "inflow",
            "d",
            "2024-01-01",
            "",
            "",
            "",
        ]
        .map(Some);
        let v1 = validate(&base, &spec).unwrap();
        let mut other = base;
        other[2] = Some("1.01");
        let v2 = validate(&other, &spec).unwrap();
        assert_ne!(v1.content_hash(), v2.content_hash());
        let mut same = base;
        same[4] = Some("INFLOW");
        assert_eq!(
            v1.content_hash(),
            validate(&same, &spec).unwrap().content_hash()
        );
    }

    #[test]
    fn chunks_split_large_inputs_at_row_limits() {
        let mut text = HEADER.to_string();
        for i in 0..2500 {
            text.push_str(&format!(
                "t{i},acc,1.00,USD,inflow,\"multi\nline\",2024-01-01\n"
            ));
        }
        let mut d = FileDecoder::from_reader(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            "x",
            Format::Csv,
            &Preset::default(),
            Bounds::default(),
            "s",
        )
        .unwrap();
        let mut total = 0;
        while let Some(c) = d.next_chunk(1000).unwrap() {
            total += c.records.num_rows();
            assert!(c.rejects.is_empty());
            if total == 2500 {
                assert_eq!(c.positions.line(c.positions.len() - 1), 2 + 2499 * 2);
            }
        }
        assert_eq!(total, 2500);
    }
}
