//! The one normalization of description text, used identically when a model
//! is trained (`udfs/python/finopsia_features.py`) and when it is applied
//! (`categorize()`), checked by the shared vectors in
//! `udfs/testdata/normalize_vectors.tsv`.
//!
//! `normalize_description(text)`:
//! 1. lower-case the whole text (Unicode full lower-case mapping, as Python's
//!    `str.lower()` and Rust's `str::to_lowercase()`);
//! 2. replace each run of ASCII digits `0-9` by a single `0` (invoice numbers,
//!    dates and amounts inside descriptions stop mattering);
//! 3. treat every character that is not alphanumeric (Rust
//!    `char::is_alphanumeric`, Python `str.isalnum`) as a separator;
//! 4. tokens are the non-empty runs between separators; the result is the
//!    tokens joined by one space (no leading/trailing space).
//!
//! The categorizer's features derived from it: `desc` (the normalized text),
//! `tok_first`, `tok_first2` (first two tokens) and `tok_last`; empty text
//! gives empty strings.

/// Normalizes a description (see the module docs).
pub fn normalize_description(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut in_digits = false;
    let mut pending_space = false;
    for c in lower.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push('0');
                in_digits = true;
            }
            continue;
        }
        in_digits = false;
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// Token features of a normalized description: (first, first two, last).
pub fn token_features(normalized: &str) -> (&str, &str, &str) {
    if normalized.is_empty() {
        return ("", "", "");
    }
    let first_end = normalized.find(' ').unwrap_or(normalized.len());
    let first = &normalized[..first_end];
    let first2 = match normalized[first_end..]
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == ' ')
    {
        Some((i, _)) => &normalized[..first_end + i],
        None => normalized,
    };
    let last = match normalized.rfind(' ') {
        Some(i) => &normalized[i + 1..],
        None => normalized,
    };
    (first, first2, last)
}

/// `|amount_minor| / 10^exponent` as f64: the `amount` feature (major units).
/// Integer-to-float conversion and one division, both correctly rounded, so
/// Python's `abs(a) / 10**e` gives the same bits.
pub fn amount_major(amount_minor: i64, exponent: u8) -> f64 {
    amount_minor.unsigned_abs() as f64 / 10f64.powi(exponent as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared vectors: the Python implementation is checked on the same file.
    #[test]
    fn shared_vectors() {
        let text = include_str!("../../testdata/normalize_vectors.tsv");
        let mut n = 0;
        for line in text.lines().skip(1) {
            let (input, expected) = line.split_once('\t').expect("two columns");
            let input = input.replace("\\t", "\t").replace("\\n", "\n");
            assert_eq!(normalize_description(&input), expected, "input {input:?}");
            n += 1;
        }
        assert!(n >= 20, "only {n} vectors");
    }

    #[test]
    fn tokens() {
        assert_eq!(token_features(""), ("", "", ""));
        assert_eq!(token_features("rent"), ("rent", "rent", "rent"));
        assert_eq!(
            token_features("office rent payment"),
            ("office", "office rent", "payment")
        );
        assert_eq!(token_features("b0b sale"), ("b0b", "b0b sale", "sale"));
    }

    #[test]
    fn amounts() {
        assert_eq!(amount_major(-123456, 2), 1234.56);
        assert_eq!(amount_major(7, 3), 0.007);
        assert_eq!(amount_major(i64::MIN, 0), 9.223372036854776e18);
    }
}
