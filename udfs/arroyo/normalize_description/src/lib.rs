/*
[dependencies]
finopsia-udf-core = "0.1"
*/
//! `normalize_description(text)` → the normalized description the
//! categorizer uses (lower-case, digit runs → `0`, punctuation → space).

use arroyo_udf_plugin::udf;

#[udf]
pub fn normalize_description(text: &str) -> String {
    finopsia_udf_core::text::normalize_description(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalizes() {
        assert_eq!(
            super::normalize_description("INV-00123/2024 Café"),
            "inv 0 0 café"
        );
    }
}
