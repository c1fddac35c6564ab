/*
[dependencies]
finopsia-udf-core = "0.1"
*/
//! `category_confidence(description, amount_minor, currency, direction, account_id, category)`
//! → 1.0 for an input category, else the bundled model's probability of its
//! most probable class (the `confidence` field of the DataFusion `categorize()`).

use std::sync::LazyLock;

use arroyo_udf_plugin::udf;
use finopsia_udf_core::categorizer::Categorizer;

static MODEL: LazyLock<Categorizer> = LazyLock::new(|| {
    Categorizer::from_json(include_str!("../../../models/default/model.json"))
        .expect("bundled model loads")
});

#[udf]
pub fn category_confidence(
    description: Option<&str>,
    amount_minor: i64,
    currency: &str,
    direction: &str,
    account_id: &str,
    category: Option<&str>,
) -> f64 {
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
        .1
}

#[cfg(test)]
mod tests {
    #[test]
    fn confidence_is_a_probability() {
        let c =
            super::category_confidence(Some("Product Sale"), 100_000, "NGN", "inflow", "2", None);
        assert!(c > 0.5 && c <= 1.0, "{c}");
        assert_eq!(
            super::category_confidence(Some("x"), 1, "NGN", "outflow", "1", Some("Custom")),
            1.0
        );
    }
}
