//! ISO 4217 currencies and their minor-unit exponents.
//!
//! Plain functions with no Arrow or chrono dependency, so the same code can be
//! compiled into the Arroyo UDF workspace (`udfs/arroyo/`).
//!
//! Codes whose ISO 4217 minor unit is "N.A." (precious metals, SDR, bond-market
//! units, `XTS`, `XXX`) are deliberately absent: an amount in them has no exact
//! minor-unit representation, so records using them are rejected.

/// Active ISO 4217 alphabetic codes with their exponent (number of minor-unit digits).
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SLL", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
    ("ZWL", 2),
];

/// A validated ISO 4217 currency: its upper-case code and exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    pub code: &'static str,
    pub exponent: u8,
}

/// Index of every three-letter code (26³ slots) into `CURRENCIES`, or -1.
static INDEX: std::sync::LazyLock<Vec<i16>> = std::sync::LazyLock::new(|| {
    let mut index = vec![-1i16; 26 * 26 * 26];
    for (i, (code, _)) in CURRENCIES.iter().enumerate() {
        let b = code.as_bytes();
        index[slot(b[0], b[1], b[2])] = i as i16;
    }
    index
});

fn slot(a: u8, b: u8, c: u8) -> usize {
    let l = |x: u8| usize::from(x.to_ascii_uppercase() - b'A');
    (l(a) * 26 + l(b)) * 26 + l(c)
}

/// Looks a code up in any letter case (surrounding whitespace not allowed).
pub fn lookup(code: &str) -> Option<Currency> {
    let b = code.as_bytes();
    if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let i = INDEX[slot(b[0], b[1], b[2])];
    (i >= 0).then(|| {
        let (code, exponent) = CURRENCIES[i as usize];
        Currency { code, exponent }
    })
}

/// Exponent (minor-unit digits) of a currency code, any letter case.
pub fn exponent(code: &str) -> Option<u8> {
    lookup(code).map(|c| c.exponent)
}

/// Formats integer minor units as an exact decimal string in major units:
/// `format_minor(-123456, 2) == "-1234.56"`, `format_minor(5, 3) == "0.005"`.
pub fn format_minor(amount_minor: i64, exponent: u8) -> String {
    let negative = amount_minor < 0;
    let digits = amount_minor.unsigned_abs().to_string();
    let exp = exponent as usize;
    let mut out = String::with_capacity(digits.len() + 3);
    if negative {
        out.push('-');
    }
    if exp == 0 {
        out.push_str(&digits);
    } else if digits.len() > exp {
        out.push_str(&digits[..digits.len() - exp]);
        out.push('.');
        out.push_str(&digits[digits.len() - exp..]);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', exp - digits.len()));
        out.push_str(&digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in CURRENCIES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn lookup_any_case_with_exponents() {
        assert_eq!(exponent("usd"), Some(2));
        assert_eq!(exponent("JPY"), Some(0));
        assert_eq!(exponent("Kwd"), Some(3));
        assert_eq!(exponent("CLF"), Some(4));
        assert_eq!(lookup("ngn").unwrap().code, "NGN");
        assert_eq!(exponent("XAU"), None, "no minor unit");
        assert_eq!(exponent("US"), None);
        assert_eq!(exponent("US1"), None);
        assert_eq!(exponent(" USD"), None);
    }

    #[test]
    fn formats_minor_units_exactly() {
        assert_eq!(format_minor(-123456, 2), "-1234.56");
        assert_eq!(format_minor(5, 3), "0.005");
        assert_eq!(format_minor(0, 2), "0.00");
        assert_eq!(format_minor(42, 0), "42");
        assert_eq!(format_minor(i64::MIN, 2), "-92233720368547758.08");
    }
}
