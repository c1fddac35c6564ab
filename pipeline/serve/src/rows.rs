//! Arrow rows as JSON: one conversion for every answer, so a column means
//! the same everywhere. Integers stay integers (money in minor units, never
//! a float), timestamps are RFC 3339 in UTC, dates `YYYY-MM-DD`, floats that
//! are not finite become `null`.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

pub type Row = Map<String, Value>;

/// Every row of `batches` as a JSON object (column name → value).
pub fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        for i in 0..b.num_rows() {
            let mut row = Map::with_capacity(b.num_columns());
            for (f, col) in schema.fields().iter().zip(b.columns()) {
                if matches!(
                    f.data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                ) {
                    continue;
                }
                row.insert(f.name().clone(), value(col, i));
            }
            out.push(row);
        }
    }
    out
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// RFC 3339 UTC of microseconds since the epoch (fraction only when there is one).
pub fn rfc3339_us(us: i64) -> Value {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => Value::Null,
    }
}

/// One cell as JSON.
pub fn value(col: &ArrayRef, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => float(col.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(col.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(col.as_string_view().value(i).to_string()),
        DataType::Date32 => {
            let days = col.as_primitive::<Date32Type>().value(i);
            chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).map_or(Value::Null, |d| {
                Value::String(d.format("%Y-%m-%d").to_string())
            })
        }
        DataType::Timestamp(TimeUnit::Second, _) => rfc3339_us(
            col.as_primitive::<TimestampSecondType>()
                .value(i)
                .saturating_mul(1_000_000),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => rfc3339_us(
            col.as_primitive::<TimestampMillisecondType>()
                .value(i)
                .saturating_mul(1_000),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            rfc3339_us(col.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            rfc3339_us(col.as_primitive::<TimestampNanosecondType>().value(i) / 1_000)
        }
        _ => match ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()) {
            Ok(f) => Value::String(f.value(i).to_string()),
            Err(_) => Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BinaryArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn cells_become_json() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new("t", finopsia_core::schema::ts_type(), true),
            Field::new("raw", DataType::Binary, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(i64::MAX), None])),
                Arc::new(StringArray::from(vec![Some("x\"y"), Some("")])),
                Arc::new(Float64Array::from(vec![f64::NAN, 0.5])),
                Arc::new(TimestampMicrosecondArray::from(vec![0, 1_500_000]).with_timezone("UTC")),
                Arc::new(BinaryArray::from(vec![b"a".as_ref(), b"b".as_ref()])),
            ],
        )
        .unwrap();
        let r = rows(&[b]);
        assert_eq!(r[0]["a"], serde_json::json!(i64::MAX));
        assert_eq!(r[1]["a"], Value::Null);
        assert_eq!(r[0]["s"], "x\"y");
        assert_eq!(r[0]["f"], Value::Null);
        assert_eq!(r[1]["f"], 0.5);
        assert_eq!(r[0]["t"], "1970-01-01T00:00:00Z");
        assert_eq!(r[1]["t"], "1970-01-01T00:00:01.500Z");
        assert!(!r[0].contains_key("raw"));
    }
}
