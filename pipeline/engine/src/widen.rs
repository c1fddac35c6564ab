//! `__finopsia_widen(x)`: integers as `Decimal128(38, 0)`, anything else as
//! it is. A window query's partial SQL sums `__finopsia_widen(arg)` instead
//! of `arg` ([`crate::sql`]), because DataFusion's integer `SUM` wraps on
//! overflow; in 38 digits a micro-batch of `i64` values cannot overflow, and
//! [`crate::window`] narrows each partial back to `i64` with a check that
//! names the table and window.

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The function's name in SQL.
pub const NAME: &str = "__finopsia_widen";

/// The wide type of integer partial sums.
pub const WIDE: DataType = DataType::Decimal128(38, 0);

fn widened(t: &DataType) -> DataType {
    if t.is_integer() {
        WIDE
    } else {
        t.clone()
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Widen {
    signature: Signature,
}

impl ScalarUDFImpl for Widen {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(widened(&arg_types[0]))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let target = args.return_type().clone();
        Ok(match &args.args[0] {
            ColumnarValue::Array(a) if a.data_type() != &target => {
                ColumnarValue::Array(widen_array(a, &target)?)
            }
            ColumnarValue::Scalar(s) if s.data_type() != target => {
                ColumnarValue::Scalar(s.cast_to(&target)?)
            }
            other => other.clone(),
        })
    }
}

/// `Int64` (every money and count column) widens with a plain `as i128` per
/// value, exact and vectorized; arrow's general cast checks each value's
/// precision on a slow path (estimated from reading at about 1% of a
/// micro-batch with three window sums; not measured alone). Other integer
/// types take the general cast.
fn widen_array(a: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if a.data_type() == &DataType::Int64 && target == &WIDE {
        let wide = a
            .as_primitive::<Int64Type>()
            .unary::<_, Decimal128Type>(|v| v as i128)
            .with_precision_and_scale(38, 0)?;
        return Ok(Arc::new(wide));
    }
    Ok(cast(a, target)?)
}

/// The UDF, for the engine's session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Widen {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    #[test]
    fn int64_widening_equals_the_general_cast_with_nulls_and_extremes() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            None,
            Some(-1),
            Some(0),
            Some(1),
            None,
            Some(i64::MAX),
        ]));
        let fast = widen_array(&a, &WIDE).unwrap();
        let general = cast(&a, &WIDE).unwrap();
        assert_eq!(fast.data_type(), &WIDE);
        assert_eq!(fast.as_ref(), general.as_ref());
        let sliced = a.slice(2, 4);
        let fast = widen_array(&sliced, &WIDE).unwrap();
        assert_eq!(fast.as_ref(), cast(&sliced, &WIDE).unwrap().as_ref());
    }
}
