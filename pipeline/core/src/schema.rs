//! Arrow schemas of the record model and the built-in tables.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn i64f(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn ts(name: &str) -> Field {
    Field::new(name, ts_type(), true)
}

/// Validated records as decoders produce them: the `incoming` table of the
/// transform query. `content_hash` identifies the record's content for
/// duplicate detection (same source + transaction_id).
pub static INCOMING: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("source"),
        utf8("transaction_id"),
        utf8("account_id"),
        i64f("amount_minor"),
        utf8("currency"),
        utf8("direction"),
        utf8("description"),
        utf8("counterparty"),
        utf8("category"),
        ts("event_time"),
        ts("posted_at"),
        i64f("content_hash"),
        ts("ingested_at"),
        i64f("ingest_seq"),
    ]))
});

/// Builds a column's data type (a function because timestamp types allocate).
pub type TypeFn = fn() -> DataType;

/// Columns the transform query's output must keep (the engine relies on them).
pub const TRANSACTION_REQUIRED: &[(&str, TypeFn)] = &[
    ("source", || DataType::Utf8),
    ("transaction_id", || DataType::Utf8),
    ("account_id", || DataType::Utf8),
    ("amount_minor", || DataType::Int64),
    ("currency", || DataType::Utf8),
    ("event_time", ts_type),
    ("content_hash", || DataType::Int64),
    ("ingest_seq", || DataType::Int64),
];

/// The `quarantine` table: every rejected input with its position and raw bytes.
pub static QUARANTINE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("source"),
        utf8("file"),
        i64f("line"),
        utf8("transaction_id"),
        utf8("reason"),
        utf8("detail"),
        utf8("raw"),
        Field::new("raw_bytes", DataType::Binary, true),
        ts("quarantined_at"),
    ]))
});

/// Makes every field nullable (tables are created that way so batches from
/// any query plan can be appended without nullability mismatches).
pub fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}
