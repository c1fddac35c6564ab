/*
[dependencies]
finopsia-udf-core = "0.1"
*/
//! `format_minor(amount_minor, currency)` → exact major-unit decimal text
//! (NULL for an unknown currency), as the DataFusion UDF of the same name.

use arroyo_udf_plugin::udf;

#[udf]
pub fn format_minor(amount_minor: i64, currency: &str) -> Option<String> {
    finopsia_udf_core::currency::exponent(currency)
        .map(|e| finopsia_udf_core::currency::format_minor(amount_minor, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(
            super::format_minor(-123456, "USD").as_deref(),
            Some("-1234.56")
        );
        assert_eq!(super::format_minor(1, "XXX"), None);
    }
}
