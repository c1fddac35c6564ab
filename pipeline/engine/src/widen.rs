//! `__finopsia_widen(x)`: integers as `Decimal128(38, 0)`, anything else as
//! it is. A window query's partial SQL sums `__finopsia_widen(arg)` instead
//! of `arg` ([`crate::sql`]), because DataFusion's integer `SUM` wraps on
//! overflow; in 38 digits a micro-batch of `i64` values cannot overflow, and
//! [`crate::window`] narrows each partial back to `i64` with a check that
//! names the table and window.

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

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
                ColumnarValue::Array(cast(a, &target)?)
            }
            ColumnarValue::Scalar(s) if s.data_type() != target => {
                ColumnarValue::Scalar(s.cast_to(&target)?)
            }
            other => other.clone(),
        })
    }
}

/// The UDF, for the engine's session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Widen {
        signature: Signature::any(1, Volatility::Immutable),
    })
}
