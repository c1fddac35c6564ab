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
use finopsia_udf_core::categorizer::Categorizer;

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
    MODEL
        .category_of(
            description.unwrap_or(""),
            amount_minor,
            currency,
            direction,
            account_id,
            category,
        )
        .expect("the bundled model evaluates")
        .0
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
