//! The Rust CatBoost evaluator against Python `catboost` (PyPI) as the oracle:
//! `tests/python/catboost_parity.py` trains four models on data it generates
//! (float-only with NaNs; CTRs with feature combinations and long/unicode
//! values; multiclass with one-hot features and unseen categories; regression)
//! and writes `predict_proba`/`predict` for test rows; `finopsia model eval`
//! must reproduce every value within 1e-9.
//!
//! Needs a Python with catboost: `FINOPSIA_TEST_PYTHON` (set by tests/run.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn python() -> PathBuf {
    let p = std::env::var("FINOPSIA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FINOPSIA_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs Python catboost into target/pyenv")
    });
    PathBuf::from(p)
}

fn read_matrix(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

/// The last `k` columns of eval's output (its prob_/prediction columns).
fn eval_outputs(path: &Path, names: &[String]) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let k = names.len();
    assert_eq!(
        &header[header.len() - k..],
        names
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        "output columns"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.rsplitn(k + 1, ',').collect();
            let mut v: Vec<f64> = f[..k].iter().map(|x| x.parse().unwrap()).collect();
            v.reverse();
            v
        })
        .collect()
}

#[test]
fn evaluator_equals_python_catboost() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/catboost_parity.py"))
        .arg(dir.path())
        .status()
        .expect("run python");
    assert!(status.success(), "catboost_parity.py failed");
    let mut checked = 0;
    for name in ["float_only", "ctr_combos", "multiclass", "regression"] {
        let d = dir.path().join(name);
        let out = d.join("rust.csv");
        common::ok(&[
            "model",
            "eval",
            "--model",
            d.join("model.json").to_str().unwrap(),
            "--input",
            d.join("test.csv").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        let (names, expected) = read_matrix(&d.join("expected.csv"));
        let got = eval_outputs(&out, &names);
        assert_eq!(got.len(), expected.len(), "{name}: row count");
        assert!(expected.len() >= 1000, "{name}: too few rows");
        let mut max = 0.0f64;
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            for (a, b) in g.iter().zip(e) {
                let d = (a - b).abs();
                assert!(
                    d <= 1e-9,
                    "{name} row {i}: rust {a} vs catboost {b} (diff {d:e})"
                );
                max = max.max(d);
            }
        }
        // The model must actually discriminate (not a constant output).
        let first = &expected[0];
        assert!(
            expected.iter().any(|r| r != first),
            "{name}: constant predictions"
        );
        eprintln!("{name}: {} rows, max |diff| {max:e}", expected.len());
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// `finopsia model eval` of a model text on an input text: (success, stdout, stderr).
fn eval_text(model: &str, input: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (m, i) = (dir.path().join("m.json"), dir.path().join("in.csv"));
    std::fs::write(&m, model).unwrap();
    std::fs::write(&i, input).unwrap();
    let out = common::finopsia(&[
        "model",
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
    ]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-split model on float feature `a` (leaf values 1 and 2) with a loss.
fn tiny_model(loss: &str) -> String {
    format!(
        r#"{{"features_info": {{"float_features": [{{"feature_index": 0, "flat_feature_index": 0, "feature_id": "a", "borders": [0.5]}}]}},
            "oblivious_trees": [{{"splits": [{{"split_index": 0, "split_type": "FloatFeature", "border": 0.5, "float_feature_index": 0}}], "leaf_values": [1, 2]}}],
            "model_info": {{"params": {{"loss_function": {{"type": "{loss}"}}}}}}}}"#
    )
}

#[test]
fn unsupported_models_are_load_errors() {
    let (ok, _, err) = eval_text(
        r#"{"features_info": {}, "trees": [], "model_info": {}}"#,
        "a\n1\n",
    );
    assert!(!ok && err.contains("non-symmetric trees"), "{err}");
    let (ok, _, err) = eval_text(&tiny_model("Poisson"), "a\n1\n");
    assert!(!ok && err.contains("Poisson is not supported"), "{err}");
    // A missing feature column is a clear input error.
    let (ok, _, err) = eval_text(&tiny_model("RMSE"), "b\n1\n");
    assert!(!ok && err.contains("no column \"a\""), "{err}");
    // And the tiny valid model evaluates: a=1 > 0.5 -> leaf 1 = 2.
    let (ok, text, err) = eval_text(&tiny_model("RMSE"), "a\n1\n0\n");
    assert!(ok, "{err}");
    assert_eq!(text, "a,prediction\n1,2.0\n0,1.0\n");
}

#[test]
fn python_normalization_matches_the_shared_vectors() {
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
from finopsia_features import normalize_description
n = 0
for line in open(sys.argv[2], encoding="utf-8").read().splitlines()[1:]:
    inp, exp = line.split("\t")
    inp = inp.replace("\\t", "\t").replace("\\n", "\n")
    got = normalize_description(inp)
    assert got == exp, (inp, got, exp)
    n += 1
print(n)
"#;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(root.join("udfs/python"))
        .arg(root.join("udfs/testdata/normalize_vectors.tsv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(n >= 20);
}

/// Training and serving compute the same features: Python
/// (`udfs/python/finopsia_features.py`) + `predict_proba` with the bundled
/// model on the raw public sample, against `categorize()` in SQL on the
/// same rows imported into a store.
#[test]
fn categorize_matches_python_features_and_predict_proba() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = root.join("pipeline/core/data/finopsia-seed-transactions.csv");
    common::import(
        &data,
        &[
            "--preset",
            "finopsia-seed",
            "--source",
            "seed",
            sample.to_str().unwrap(),
        ],
    );
    let script = r#"
import csv, sys
sys.path.insert(0, sys.argv[1])
import finopsia_features as ff
import catboost, pandas as pd
m = catboost.CatBoostClassifier()
m.load_model(sys.argv[2], format="json")
rows = list(csv.DictReader(open(sys.argv[3], encoding="utf-8")))
X = pd.DataFrame([ff.features_of(r["description"], int(r["amount"]) * 100, 2, r["direction"], r["account_id"])
                  for r in rows], columns=ff.FEATURES)[m.feature_names_]
p = m.predict_proba(X)
for r, probs in zip(rows, p):
    k = int(probs.argmax())
    print(r["transaction_id"], m.classes_[k], repr(float(probs[k])), sep=",")
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(root.join("udfs/python"))
        .arg(root.join("udfs/models/default/model.json"))
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: std::collections::HashMap<String, (String, f64)> =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_string(), (f[1].to_string(), f[2].parse().unwrap()))
            })
            .collect();
    assert_eq!(expected.len(), 3000);
    let rows = common::query(
        &data,
        "SELECT transaction_id, \
           categorize(description, amount_minor, currency, direction, account_id, NULL)['category'] AS c, \
           categorize(description, amount_minor, currency, direction, account_id, NULL)['confidence'] AS p \
         FROM transactions",
    );
    assert_eq!(rows.len(), 3000);
    for r in &rows {
        let id = common::text(r, "transaction_id");
        let (class, prob) = &expected[id];
        assert_eq!(common::text(r, "c"), class, "transaction {id}");
        let p = r["p"].as_f64().unwrap();
        assert!((p - prob).abs() <= 1e-9, "transaction {id}: {p} vs {prob}");
    }
}
