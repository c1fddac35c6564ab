//! The decimal and date parsers against Python as a reference oracle, on
//! generated cases: amounts against `decimal` (exact, 200 digits of
//! precision), canonical event times against `datetime`.
//!
//! Needs a Python 3.11+: `FINOPSIA_TEST_PYTHON` (set by tests/run.sh); it
//! fails, never skips, without one. `PROPTEST_CASES=N` sets how many cases
//! each test generates (default 4000).

use std::io::Write;
use std::process::{Command, Stdio};

use finopsia_core::money::{parse_amount, AmountError, AmountUnit};
use finopsia_core::timefmt::parse_time;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

fn python() -> String {
    std::env::var("FINOPSIA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FINOPSIA_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs a Python into target/pyenv")
    })
}

fn cases() -> usize {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
}

/// Runs `script` with one case per stdin line; one answer per stdout line.
fn oracle(script: &str, input: &[String]) -> Vec<String> {
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut stdin = child.stdin.take().unwrap();
    let text = input.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("python runs");
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// No case differs, and enough were valid for the comparison to mean
/// something.
fn agrees(mismatches: &[String], accepted: usize, total: usize) {
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
    assert!(
        accepted > total / 4,
        "the generator must mostly produce valid cases ({accepted} of {total})"
    );
}

fn generate<S: Strategy>(s: S) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..cases())
        .map(|_| s.new_tree(&mut runner).expect("value").current())
        .collect()
}

fn digits(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![8 => b'0'..=b'9', 1 => Just(b'0')], 0..max)
        .prop_map(|d| String::from_utf8(d).unwrap())
}

fn amount_text() -> impl Strategy<Value = String> {
    let number =
        (digits(22), any::<bool>(), digits(7))
            .prop_map(|(i, dot, f)| if dot { format!("{i}.{f}") } else { i });
    let junk = prop_oneof![
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("1e3".to_string()),
        Just("1_000".to_string()),
        Just(" 1".to_string()),
        Just("1,5".to_string()),
        Just("1..2".to_string()),
        Just("١٢".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("0x10".to_string()),
    ];
    prop_oneof![12 => number, 1 => junk]
}

const DECIMAL_ORACLE: &str = r#"
import sys, re, decimal
decimal.getcontext().prec = 200
I64 = 2**63 - 1
for line in sys.stdin:
    text, exp, unit = line.rstrip("\n").split("\t")
    scale = int(exp) if unit == "major" else 0
    pattern = r"[0-9]+(\.[0-9]+)?" if unit == "major" else r"[0-9]+"
    m = re.fullmatch(pattern, text, flags=re.ASCII)
    if not m:
        print("syntax"); continue
    frac = text.split(".")[1] if "." in text else ""
    if len(frac) > scale:
        print("precision"); continue
    v = decimal.Decimal(text).scaleb(scale)
    assert v == v.to_integral_value()
    v = int(v)
    print("range" if v > I64 else v)
"#;

#[test]
fn amounts_match_python_decimal() {
    let cases = generate((amount_text(), 0u8..=4, any::<bool>()));
    let input: Vec<String> = cases
        .iter()
        .map(|(t, e, major)| format!("{t}\t{e}\t{}", if *major { "major" } else { "minor" }))
        .collect();
    let want = oracle(DECIMAL_ORACLE, &input);
    assert_eq!(want.len(), cases.len());
    let mut mismatches = Vec::new();
    let mut accepted = 0;
    for ((text, exp, major), want) in cases.iter().zip(&want) {
        let unit = if *major {
            AmountUnit::Major
        } else {
            AmountUnit::Minor
        };
        let got = match parse_amount(text, unit, *exp) {
            Ok(v) => {
                accepted += 1;
                v.to_string()
            }
            Err(AmountError::Syntax) => "syntax".into(),
            Err(AmountError::Precision) => "precision".into(),
            Err(AmountError::Range) => "range".into(),
        };
        if &got != want {
            mismatches.push(format!(
                "{text:?} exp {exp} {unit:?}: ours {got}, python {want}"
            ));
        }
    }
    agrees(&mismatches, accepted, cases.len());
}

fn time_text() -> impl Strategy<Value = String> {
    let date = (2u32..9999, 0u32..=13, 0u32..=32);
    let time = (0u32..=24, 0u32..=60, 0u32..=59, 0usize..=6, 0u32..1_000_000);
    let zone = prop_oneof![
        3 => Just("Z".to_string()),
        2 => (any::<bool>(), 0u32..=24, 0u32..=60)
            .prop_map(|(neg, h, m)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
        1 => Just(String::new()),
    ];
    (date, prop::option::of((time, zone))).prop_map(|((y, mo, d), t)| {
        let mut s = format!("{y:04}-{mo:02}-{d:02}");
        if let Some(((h, mi, se, fd, frac), z)) = t {
            s.push_str(&format!("T{h:02}:{mi:02}:{se:02}"));
            if fd > 0 {
                let f = format!("{frac:06}");
                s.push('.');
                s.push_str(&f[..fd]);
            }
            s.push_str(&z);
        }
        s
    })
}

const DATETIME_ORACLE: &str = r#"
import re, sys
from datetime import date, datetime, timedelta, timezone
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
for line in sys.stdin:
    t = line.rstrip("\n")
    # fromisoformat takes offset minutes up to 60; RFC 3339 allows 00-59.
    off = re.search(r"[+-][0-9]{2}:([0-9]{2})$", t)
    if off and int(off.group(1)) > 59:
        print("invalid"); continue
    try:
        if len(t) == 10:
            d = date.fromisoformat(t)
            dt = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        else:
            dt = datetime.fromisoformat(t)
            if dt.tzinfo is None:
                raise ValueError("no offset")
        print((dt - EPOCH) // timedelta(microseconds=1))
    except (ValueError, OverflowError):
        print("invalid")
"#;

#[test]
fn event_times_match_python_datetime() {
    let cases = generate(time_text());
    let want = oracle(DATETIME_ORACLE, &cases);
    assert_eq!(want.len(), cases.len());
    let mut mismatches = Vec::new();
    let mut accepted = 0;
    for (text, want) in cases.iter().zip(&want) {
        let got = match parse_time(text, None) {
            Some(us) => {
                accepted += 1;
                us.to_string()
            }
            None => "invalid".into(),
        };
        if &got != want {
            mismatches.push(format!("{text:?}: ours {got}, python {want}"));
        }
    }
    agrees(&mismatches, accepted, cases.len());
}
