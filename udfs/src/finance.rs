//! Finance helpers as SQL functions.
//!
//! - `format_minor(amount_minor BIGINT, currency VARCHAR) -> VARCHAR`: exact
//!   major-unit decimal text, e.g. `format_minor(-123456, 'USD') = '-1234.56'`.
//! - `currency_exponent(currency VARCHAR) -> INT`: ISO 4217 minor-unit digits.
//!
//! Unknown currencies give NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

use crate::currency;

pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![
        create_udf(
            "format_minor",
            vec![DataType::Int64, DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(format_minor_udf),
        ),
        create_udf(
            "currency_exponent",
            vec![DataType::Utf8],
            DataType::Int32,
            Volatility::Immutable,
            Arc::new(currency_exponent_udf),
        ),
    ]
}

fn format_minor_udf(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let amounts = arrays[0].as_primitive::<Int64Type>();
    let currencies = arrays[1].as_string::<i32>();
    let mut out = StringBuilder::with_capacity(amounts.len(), amounts.len() * 8);
    for i in 0..amounts.len() {
        if amounts.is_null(i) || currencies.is_null(i) {
            out.append_null();
            continue;
        }
        match currency::exponent(currencies.value(i)) {
            Some(exp) => out.append_value(currency::format_minor(amounts.value(i), exp)),
            None => out.append_null(),
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

fn currency_exponent_udf(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let currencies = arrays[0].as_string::<i32>();
    let mut out = Int32Builder::with_capacity(currencies.len());
    for i in 0..currencies.len() {
        if currencies.is_null(i) {
            out.append_null();
        } else {
            out.append_option(currency::exponent(currencies.value(i)).map(i32::from));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn udfs_work_in_sql() {
        let ctx = SessionContext::new();
        crate::register_all(&ctx, &crate::ModelHandle::bundled());
        let batches = ctx
            .sql(
                "SELECT format_minor(CAST(-123456 AS BIGINT), 'usd') AS a, \
                  format_minor(CAST(7 AS BIGINT), 'KWD') AS b, \
                  currency_exponent('JPY') AS c, currency_exponent('XXX') AS d",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("| -1234.56 | 0.007 | 0 |   |"), "{text}");
    }
}
