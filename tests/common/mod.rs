//! Helpers for end-to-end tests of the `finopsia` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod http;
pub mod influx;
pub mod nats;
pub mod service;
pub mod tls;
pub mod webhook;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_finopsia"))
}

/// The binary as a command, with the REST API on a free port (so services
/// of tests running at once never compete for one).
pub fn finopsia_command() -> Command {
    let mut c = Command::new(bin());
    c.env("FINOPSIA__HTTP__ADDR", "127.0.0.1:0");
    c.env("FINOPSIA__FLIGHT__ADDR", "127.0.0.1:0");
    c
}

pub fn finopsia(args: &[&str]) -> Output {
    finopsia_command()
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .output()
        .expect("run finopsia")
}

pub fn ok(args: &[&str]) -> String {
    let out = finopsia(args);
    assert!(
        out.status.success(),
        "finopsia {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 stdout")
}

/// `finopsia import --json`, parsed.
pub fn import(data: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["import", "--json", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    serde_json::from_str(ok(&args).trim()).expect("import prints JSON")
}

/// `finopsia query --format json`, parsed into rows.
pub fn query(data: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = ok(&[
        "query",
        "--format",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
        sql,
    ]);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r.as_object().expect("object").clone())
        .collect()
}

pub fn int(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> i64 {
    row.get(key)
        .and_then(|v| v.as_i64())
        .unwrap_or_else(|| panic!("{key} missing in {row:?}"))
}

pub fn text<'a>(row: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    row.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// Exact minor units from a decimal string, independent of the engine's parser.
pub fn minor(amount: &str, exponent: u32) -> i64 {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let mut frac = frac.to_string();
    while frac.len() < exponent as usize {
        frac.push('0');
    }
    format!("{int}{frac}").parse().unwrap()
}

/// cashflow_daily must equal a batch GROUP BY over transactions.
pub fn assert_windows_match_batch(data: &std::path::Path) {
    let cols = "CAST(window_start AS VARCHAR) AS d, account_id, currency, COALESCE(category, '') AS category, inflow_minor, outflow_minor, net_minor, tx_count";
    let streamed = query(
        data,
        &format!("SELECT {cols} FROM cashflow_daily ORDER BY d, account_id, currency, category"),
    );
    let batch = query(
        data,
        "SELECT CAST(date_bin(INTERVAL '1 day', event_time) AS VARCHAR) AS d, account_id, currency, COALESCE(category, '') AS category, \
         SUM(CASE WHEN amount_minor > 0 THEN amount_minor ELSE 0 END) AS inflow_minor, \
         SUM(CASE WHEN amount_minor < 0 THEN -amount_minor ELSE 0 END) AS outflow_minor, \
         SUM(amount_minor) AS net_minor, COUNT(*) AS tx_count \
         FROM transactions GROUP BY 1, 2, 3, 4 ORDER BY d, account_id, currency, category",
    );
    assert!(!batch.is_empty());
    if streamed != batch {
        let first = streamed.iter().zip(&batch).position(|(a, b)| a != b);
        panic!(
            "cashflow_daily ({} rows) differs from the batch GROUP BY ({} rows); first difference at {first:?}: {:?} vs {:?}",
            streamed.len(),
            batch.len(),
            first.and_then(|i| streamed.get(i)),
            first.and_then(|i| batch.get(i)),
        );
    }
}

/// A queries directory with the built-in queries plus `extra` (file name, SQL).
pub fn queries_dir(root: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let dir = root.join("queries");
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    for f in ["transform.sql", "cashflow_daily.sql"] {
        std::fs::copy(builtin.join(f), dir.join(f)).unwrap();
    }
    for (name, sql) in extra {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    dir
}

/// `n` of the first row of `sql` (a `SELECT COUNT(*) AS n ...`): 0 while
/// there is no store yet, -1 when the query fails (for polling loops).
pub fn count(data: &Path, sql: &str) -> i64 {
    if !data.join("tables/transactions/_delta_log").is_dir() {
        return 0;
    }
    let out = finopsia(&[
        "query",
        "--format",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
        sql,
    ]);
    if !out.status.success() {
        return -1;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[0]["n"].as_i64().unwrap_or(0)
}

/// `finopsia job history --json [JOB]`: up to 1,000 runs, newest first.
pub fn job_history(data: &Path, job: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["job", "history", "--json", "--limit", "1000"];
    args.extend(job);
    args.extend(["--data-dir", data.to_str().unwrap()]);
    serde_json::from_str(ok(&args).trim()).expect("job history prints JSON")
}

/// `finopsia --config CONFIG job run JOB` on `data`; it must succeed.
pub fn job_run(config: &Path, data: &Path, job: &str) -> String {
    ok(&[
        "--config",
        config.to_str().unwrap(),
        "job",
        "run",
        job,
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

/// `promtool check metrics` (Debian prometheus, installed by tests/run.sh)
/// passes on `text`.
pub fn promtool_check(text: &str) {
    let promtool = std::env::var("FINOPSIA_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{promtool}: {e} (bash tests/run.sh installs Debian's prometheus, which has promtool)")
        });
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let lint = child.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr),
    );
}
