//! Limits on what one input record may be: the `[limits]` configuration.
//!
//! Every breach is a quarantine reason ([`crate::input::Reason`]), never an
//! error: a hostile or broken record costs only itself. The byte limits also
//! bound the decoder's memory (a record is never buffered past
//! `max_record_bytes`), and the amount limit leaves headroom so that a
//! micro-batch's partial sums cannot overflow `i64` (checked against
//! `engine.batch_rows` when the configuration is loaded).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Earliest and latest dates a limit may name: the range of nanosecond
/// timestamps (1677-09-21 to 2262-04-11), which the query engine may use.
const DATE_FLOOR: (i32, u32, u32) = (1678, 1, 1);
const DATE_CEILING: (i32, u32, u32) = (2261, 12, 31);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes one record may take (a CSV record with its quoted line breaks,
    /// or one NDJSON line). Longer: `record_too_long`, with the first
    /// `max_record_bytes` kept in quarantine.
    pub max_record_bytes: usize,
    /// Bytes one field may take. Longer: `field_too_long`.
    pub max_field_bytes: usize,
    /// Bytes a quoted CSV field may run before its closing quote. Past it:
    /// `quoted_field_too_long`, and splitting restarts at the next line.
    pub max_quoted_bytes: usize,
    /// Line breaks a quoted CSV field may contain. Past it:
    /// `quoted_field_too_long`, and splitting restarts at the next line.
    pub max_quoted_lines: usize,
    /// Earliest accepted `transaction_date` and `posted_at` (a date,
    /// inclusive). Earlier: `date_out_of_range`.
    pub min_date: String,
    /// Latest accepted `transaction_date` and `posted_at` (a date, inclusive:
    /// any time that day). Later: `date_out_of_range`.
    pub max_date: String,
    /// Largest accepted amount in minor units (cents for USD). Larger:
    /// `amount_out_of_range`. `max_amount_minor × engine.batch_rows` must fit
    /// in `i64`, so a micro-batch's sums cannot overflow.
    pub max_amount_minor: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 65_536,
            max_field_bytes: 16_384,
            max_quoted_bytes: 16_384,
            max_quoted_lines: 16,
            min_date: "1900-01-01".into(),
            max_date: "2199-12-31".into(),
            max_amount_minor: 1_000_000_000_000,
        }
    }
}

/// [`Limits`] in the form the decoder checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_record_bytes: usize,
    pub max_field_bytes: usize,
    pub max_quoted_bytes: usize,
    pub max_quoted_lines: usize,
    /// First accepted event time, UTC microseconds.
    pub min_time_us: i64,
    /// Last accepted event time, UTC microseconds.
    pub max_time_us: i64,
    pub max_amount_minor: i64,
}

impl Default for Bounds {
    fn default() -> Self {
        Limits::default()
            .bounds()
            .expect("the default limits are valid")
    }
}

fn date(key: &str, text: &str) -> Result<NaiveDate> {
    let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        Error::Config(format!(
            "limits.{key} = {text:?} is not a date like 1900-01-01"
        ))
    })?;
    let floor = NaiveDate::from_ymd_opt(DATE_FLOOR.0, DATE_FLOOR.1, DATE_FLOOR.2);
    let ceiling = NaiveDate::from_ymd_opt(DATE_CEILING.0, DATE_CEILING.1, DATE_CEILING.2);
    if Some(d) < floor || Some(d) > ceiling {
        return Err(Error::Config(format!(
            "limits.{key} = {text:?} is outside 1678-01-01..2261-12-31 (the range of nanosecond timestamps)"
        )));
    }
    Ok(d)
}

impl Limits {
    /// Validates the settings and converts them for the decoder.
    pub fn bounds(&self) -> Result<Bounds> {
        let err = |m: String| Err(Error::Config(format!("limits.{m}")));
        for (key, v) in [
            ("max_record_bytes", self.max_record_bytes),
            ("max_field_bytes", self.max_field_bytes),
            ("max_quoted_bytes", self.max_quoted_bytes),
        ] {
            if v < 64 {
                return err(format!("{key} = {v} must be at least 64"));
            }
        }
        if self.max_record_bytes > u32::MAX as usize {
            return err(format!(
                "max_record_bytes = {} must be at most {}",
                self.max_record_bytes,
                u32::MAX
            ));
        }
        for (key, v) in [
            ("max_field_bytes", self.max_field_bytes),
            ("max_quoted_bytes", self.max_quoted_bytes),
        ] {
            if v > self.max_record_bytes {
                return err(format!(
                    "{key} = {v} must not exceed max_record_bytes = {}",
                    self.max_record_bytes
                ));
            }
        }
        if self.max_amount_minor < 1 {
            return err(format!(
                "max_amount_minor = {} must be at least 1",
                self.max_amount_minor
            ));
        }
        let min = date("min_date", &self.min_date)?;
        let max = date("max_date", &self.max_date)?;
        if min > max {
            return err(format!(
                "min_date = {:?} is after max_date = {:?}",
                self.min_date, self.max_date
            ));
        }
        let micros = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_micros())
        };
        Ok(Bounds {
            max_record_bytes: self.max_record_bytes,
            max_field_bytes: self.max_field_bytes,
            max_quoted_bytes: self.max_quoted_bytes,
            max_quoted_lines: self.max_quoted_lines,
            min_time_us: micros(min).unwrap_or(i64::MIN),
            max_time_us: micros(max).map_or(i64::MAX, |t| t + 86_400_000_000 - 1),
            max_amount_minor: self.max_amount_minor,
        })
    }

    /// Checks the settings, and that `batch_rows` records at the largest
    /// amount cannot overflow a micro-batch's `i64` sums.
    pub fn validate(&self, batch_rows: usize) -> Result<()> {
        self.bounds()?;
        let worst = i128::from(self.max_amount_minor) * batch_rows as i128;
        if worst > i128::from(i64::MAX) {
            return Err(Error::Config(format!(
                "limits.max_amount_minor = {} times engine.batch_rows = {batch_rows} exceeds i64 ({}): a micro-batch's sums could overflow; lower one of them",
                self.max_amount_minor,
                i64::MAX
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_leave_headroom() {
        let l = Limits::default();
        l.validate(262_144).unwrap();
        let c = l.bounds().unwrap();
        assert_eq!(
            crate::timefmt::format_micros(c.min_time_us),
            "1900-01-01T00:00:00Z"
        );
        assert_eq!(
            crate::timefmt::format_micros(c.max_time_us),
            "2199-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn bad_settings_say_which_key() {
        let cases: Vec<(Limits, &str)> = vec![
            (
                Limits {
                    max_field_bytes: 100_000,
                    ..Limits::default()
                },
                "limits.max_field_bytes",
            ),
            (
                Limits {
                    min_date: "1/1/1900".into(),
                    ..Limits::default()
                },
                "limits.min_date",
            ),
            (
                Limits {
                    max_date: "9999-12-31".into(),
                    ..Limits::default()
                },
                "limits.max_date",
            ),
            (
                Limits {
                    min_date: "2100-01-01".into(),
                    max_date: "2000-01-01".into(),
                    ..Limits::default()
                },
                "after max_date",
            ),
            (
                Limits {
                    max_amount_minor: 0,
                    ..Limits::default()
                },
                "limits.max_amount_minor",
            ),
        ];
        for (l, want) in cases {
            let e = l.bounds().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = Limits {
            max_amount_minor: i64::MAX / 2,
            ..Limits::default()
        }
        .validate(3)
        .unwrap_err()
        .to_string();
        assert!(e.contains("engine.batch_rows"), "{e}");
    }
}
