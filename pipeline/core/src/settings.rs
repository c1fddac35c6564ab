//! Helpers for the configuration sections each crate defines.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::timefmt::parse_duration;

/// Accepts a string or a bare number (so `FINOPSIA__ENGINE__ALLOWED_LATENESS=0`
/// works although the env value parses as an integer).
pub fn text_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Int(i64),
        Float(f64),
    }
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(s) => s,
        TextOrNumber::Int(i) => i.to_string(),
        TextOrNumber::Float(f) => f.to_string(),
    })
}

/// Parses the duration config key `name`, or says what is expected.
pub fn duration(name: &str, value: &str) -> Result<Duration> {
    parse_duration(value).ok_or_else(|| {
        Error::Config(format!(
            "{name} = {value:?} is not a duration like 250ms, 10s, 5m, 1h, 1d"
        ))
    })
}
