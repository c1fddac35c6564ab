//! Event-time parsing. All times are UTC microseconds since the Unix epoch.
//!
//! Canonical input accepts an ISO 8601 calendar date (`2024-03-01`, midnight
//! UTC) or an RFC 3339 date-time with offset (`2024-03-01T09:30:00+01:00`,
//! converted to UTC). A preset may instead give a chrono `strftime` format
//! (`%m/%d/%Y %H:%M`); such local times are taken as UTC, and a format with only
//! date fields gives midnight UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Parses an event time; `None` when the text does not match.
pub fn parse_time(text: &str, format: Option<&str>) -> Option<i64> {
    match format {
        None => parse_canonical(text),
        Some(fmt) => NaiveDateTime::parse_from_str(text, fmt)
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(text, fmt)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
            .map(|dt| dt.and_utc().timestamp_micros()),
    }
}

fn parse_canonical(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        if s.iter().all(u8::is_ascii_digit) {
            Some(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
        } else {
            None
        }
    };
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let day_us = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
        if b.len() == 10 {
            return Some(day_us);
        }
        // Fast path for the common `YYYY-MM-DDTHH:MM:SSZ`; anything else
        // (fractions, offsets, lower-case t, space) goes to chrono.
        if b.len() == 20 && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z' {
            let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
            if h < 24 && m < 60 && s < 60 {
                return Some(day_us + i64::from(h * 3600 + m * 60 + s) * 1_000_000);
            }
        }
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|dt| dt.timestamp_micros())
}

/// Formats UTC microseconds as RFC 3339 (for messages and tests).
pub fn format_micros(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| us.to_string())
}

/// Parses a human duration: `250ms`, `10s`, `5m`, `1h`, `2d`, `1w` (or `0`).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    if t == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        "w" => n.checked_mul(7 * 86_400_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn canonical_dates_and_datetimes() {
        assert_eq!(parse_time("1970-01-02", None), Some(DAY));
        assert_eq!(parse_time("2024-02-29", None), Some(19782 * DAY));
        assert_eq!(parse_time("2023-02-29", None), None);
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", None), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z", None), Some(1_500_000));
        assert_eq!(
            parse_time("1970-01-01T00:00:00", None),
            None,
            "offset required"
        );
        assert_eq!(parse_time("01/02/2020", None), None);
        assert_eq!(parse_time("", None), None);
    }

    #[test]
    fn preset_formats() {
        let f = Some("%m/%d/%Y %H:%M");
        assert_eq!(parse_time("1/2/1970 0:00", f), Some(DAY));
        assert_eq!(parse_time("1/2/1970 1:30", f), Some(DAY + 90 * 60_000_000));
        assert_eq!(parse_time("13/2/1970 0:00", f), None);
        assert_eq!(parse_time("02.01.1970", Some("%d.%m.%Y")), Some(DAY));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert!(parse_duration("h").is_none());
        assert!(parse_duration("5 parsecs").is_none());
    }
}
