/*
[dependencies]
finopsia-udf-core = "0.1"
*/
//! `categorize(description, amount_minor, currency, direction, account_id, category)`
//! → the category: the input category when present, else the bundled
//! CatBoost model's most probable class. Same core code as the DataFusion
//! `categorize()` (which returns a struct; Arroyo UDFs return scalars, so the
//! confidence is the separate `category_confidence` UDF).

use std::sync::LazyLock;

use arroyo_udf_plugin::udf;
use finopsia_udf_core::categorizer::{Categorizer, TxnRow};
use finopsia_udf_core::currency;

static MODEL: LazyLock<Categorizer> = LazyLock::new(|| {
    Categorizer::from_json(include_str!("../../../models/default/model.json"))
        .expect("bundled model loads")
});

#[udf]
pub fn categorize(
    description: Option<&str>,
    amount_minor: i64,
    currency: &str,
    direction: &str,
    account_id: &str,
    category: Option<&str>,
) -> String {
    if let Some(c) = category.map(str::trim).filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    let row = TxnRow {
        description: description.unwrap_or(""),
        amount_minor,
        exponent: currency::exponent(currency).unwrap_or(2),
        currency,
        direction,
        account: account_id,
    };
    let p = MODEL.categorize(&[row]).expect("categorize")[0];
    MODEL.classes()[p.class].clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn categorizes_like_the_engine() {
        assert_eq!(
            super::categorize(
                Some("Office Rent Payment"),
                25_000_000,
                "NGN",
                "outflow",
                "1",
                None
            ),
            "Rent"
        );
        assert_eq!(
            super::categorize(Some("x"), 1, "NGN", "outflow", "1", Some("Custom")),
            "Custom"
        );
    }
}
