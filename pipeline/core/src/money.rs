//! Exact money parsing: decimal text to signed integer minor units.
//!
//! No floating point anywhere: the text's digits are accumulated into an `i64`
//! with overflow checks. A major-unit amount may have at most as many fractional
//! digits as the currency's ISO 4217 exponent (`12.345 USD` is rejected, never
//! rounded); a minor-unit amount is a plain integer.

use serde::{Deserialize, Serialize};

/// Why an amount was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not `digits[.digits]` (signs, exponents, separators, empty…).
    Syntax,
    /// More fractional digits than the currency allows.
    Precision,
    /// Does not fit in an `i64` of minor units.
    Range,
}

/// Whether input amounts are in major units (`12.34`) or minor units (`1234`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmountUnit {
    #[default]
    Major,
    Minor,
}

/// Parses a non-negative amount to minor units with the given currency exponent.
pub fn parse_amount(text: &str, unit: AmountUnit, exponent: u8) -> Result<i64, AmountError> {
    let bytes = text.as_bytes();
    let (int_part, frac_part) = match memchr::memchr(b'.', bytes) {
        Some(dot) if unit == AmountUnit::Major => (&bytes[..dot], Some(&bytes[dot + 1..])),
        Some(_) => return Err(AmountError::Syntax),
        None => (bytes, None),
    };
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return Err(AmountError::Syntax);
    }
    let frac = frac_part.unwrap_or(&[]);
    if frac_part.is_some() && (frac.is_empty() || !frac.iter().all(u8::is_ascii_digit)) {
        return Err(AmountError::Syntax);
    }
    // Syntax, then precision, then range: the first rule broken is reported.
    let scale = match unit {
        AmountUnit::Major => exponent as usize,
        AmountUnit::Minor => 0,
    };
    if frac.len() > scale {
        return Err(AmountError::Precision);
    }
    let mut value: i64 = 0;
    for &b in int_part {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::Range)?;
    }
    for i in 0..scale {
        let digit = frac.get(i).map_or(0, |b| i64::from(b - b'0'));
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or(AmountError::Range)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AmountUnit::*;

    #[test]
    fn major_units_by_exponent() {
        assert_eq!(parse_amount("12.34", Major, 2), Ok(1234));
        assert_eq!(parse_amount("12.3", Major, 2), Ok(1230));
        assert_eq!(parse_amount("12", Major, 2), Ok(1200));
        assert_eq!(parse_amount("0.005", Major, 3), Ok(5));
        assert_eq!(parse_amount("1500", Major, 0), Ok(1500));
        assert_eq!(parse_amount("0", Major, 2), Ok(0));
        assert_eq!(parse_amount("007.10", Major, 2), Ok(710));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "", "-1", "+1", "1,000.00", "1e3", ".5", "5.", "1.2.3", "12 34", "NaN", "1.-2",
        ] {
            assert_eq!(
                parse_amount(bad, Major, 2),
                Err(AmountError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!(parse_amount("12.5", Minor, 2), Err(AmountError::Syntax));
    }

    #[test]
    fn rejects_excess_precision_instead_of_rounding() {
        assert_eq!(
            parse_amount("12.345", Major, 2),
            Err(AmountError::Precision)
        );
        assert_eq!(parse_amount("1.5", Major, 0), Err(AmountError::Precision));
        assert_eq!(
            parse_amount("12.340", Major, 2),
            Err(AmountError::Precision)
        );
    }

    #[test]
    fn range_is_checked() {
        assert_eq!(parse_amount("92233720368547758.07", Major, 2), Ok(i64::MAX));
        assert_eq!(
            parse_amount("92233720368547758.08", Major, 2),
            Err(AmountError::Range)
        );
        assert_eq!(parse_amount("9223372036854775807", Minor, 2), Ok(i64::MAX));
        assert_eq!(
            parse_amount("99999999999999999999", Minor, 2),
            Err(AmountError::Range)
        );
    }

    #[test]
    fn minor_units_are_integers() {
        assert_eq!(parse_amount("1234", Minor, 2), Ok(1234));
    }
}
