//! Arrow Flight SQL of `finopsia run`, from Python (PyPI pyarrow and
//! adbc-driver-flightsql, tests/python/flight_client.py): the same rows and
//! types as `finopsia query --format csv` over transactions, a window
//! table and forecasts, a parameter-bound prepared statement, every table
//! with its schema in the catalog, tokens (none and revoked refused),
//! read-only statements, and a large result streamed with bounded memory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::service::*;
use common::*;

fn python() -> String {
    std::env::var("FINOPSIA_TEST_PYTHON").expect(
        "FINOPSIA_TEST_PYTHON must name a Python with pyarrow and adbc-driver-flightsql (tests/run.sh sets it up)",
    )
}

fn create_token(data: &Path) -> String {
    ok(&[
        "token",
        "create",
        "--role",
        "read",
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .trim()
    .to_string()
}

fn revoked_token(data: &Path) -> String {
    let t = create_token(data);
    let list: serde_json::Value = serde_json::from_str(
        ok(&[
            "token",
            "list",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .trim(),
    )
    .unwrap();
    let id = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&["token", "revoke", &id, "--data-dir", data.to_str().unwrap()]);
    t
}

fn flight_addr(data: &Path) -> String {
    wait_for("state/flight.json", Duration::from_secs(60), || {
        data.join("state/flight.json").exists()
    });
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("state/flight.json")).unwrap())
            .unwrap();
    v["addr"].as_str().unwrap().to_string()
}

fn run_client(dir: &Path, cases: &serde_json::Value) -> serde_json::Value {
    let cases_path = dir.join("cases.json");
    let out_path = dir.join("out.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/flight_client.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(&cases_path)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flight_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap()
}

fn csv_of(data: &Path, dir: &Path, name: &str, sql: &str) -> String {
    let text = ok(&[
        "query",
        "--format",
        "csv",
        "--data-dir",
        data.to_str().unwrap(),
        sql,
    ]);
    let p = dir.join(format!("{name}.csv"));
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn flight_sql_answers_pyarrow_and_adbc_like_finopsia_query() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipeline/core/data/finopsia-seed-transactions.csv");
    import(
        &data,
        &[
            "--preset",
            "finopsia-seed",
            "--source",
            "seed",
            sample.to_str().unwrap(),
        ],
    );
    let cfg = write_config(
        tmp.path(),
        "[forecast]\nbacktest_folds = 0\nrefresh_interval = \"0\"\nhorizon_days = 14\n",
    );
    let c = cfg.to_str().unwrap();
    ok(&["forecast", "--config", c, "--data-dir", d, "--json"]);
    let token = create_token(&data);
    let revoked = revoked_token(&data);
    let service = Service::start(&data, &cfg, &[]);
    let addr = flight_addr(&data);

    let queries = [
        (
            "transactions",
            "SELECT source, transaction_id, account_id, amount_minor, currency, event_time, category, description \
             FROM transactions ORDER BY source, transaction_id",
            None,
            None,
        ),
        (
            "window",
            "SELECT * FROM cashflow_daily ORDER BY window_start, account_id, currency, category",
            None,
            None,
        ),
        (
            "forecasts",
            "SELECT series_id, ds, yhat, yhat_lower, yhat_upper, model FROM forecasts_latest ORDER BY series_id, ds",
            None,
            None,
        ),
        (
            "prepared",
            "SELECT transaction_id, amount_minor, event_time FROM transactions \
             WHERE account_id = ? AND amount_minor < ? ORDER BY transaction_id",
            Some(serde_json::json!(["3", -5_000_000])),
            Some(
                "SELECT transaction_id, amount_minor, event_time FROM transactions \
                 WHERE account_id = '3' AND amount_minor < -5000000 ORDER BY transaction_id",
            ),
        ),
    ];
    let mut list = Vec::new();
    for (name, sql, params, literal) in &queries {
        let csv = csv_of(&data, tmp.path(), name, literal.unwrap_or(sql));
        list.push(serde_json::json!({"name": name, "sql": sql, "params": params, "csv": csv}));
    }
    let refused = [
        "CREATE TABLE x (a INT)",
        "INSERT INTO transactions SELECT * FROM transactions",
        "DELETE FROM transactions",
        "COPY (SELECT 1) TO '/tmp/finopsia-flight-copy.csv'",
        "CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM read_csv('/etc/passwd')",
    ];
    let out = run_client(
        tmp.path(),
        &serde_json::json!({
            "uri": format!("grpc://{addr}"),
            "token": token,
            "revoked": revoked,
            "queries": list,
            "refused": refused,
        }),
    );
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap());

    // Every query: ADBC == pyarrow.flight == finopsia query (checked in
    // the client); here, that they ran and returned rows.
    let rows = |n: &str| out["queries"][n]["rows"].as_i64().unwrap();
    assert_eq!(rows("transactions"), 3000);
    assert_eq!(out["queries"]["transactions"]["flight_rows"], 3000);
    assert_eq!(
        rows("window"),
        count(&data, "SELECT COUNT(*) AS n FROM cashflow_daily")
    );
    assert_eq!(
        rows("forecasts"),
        count(&data, "SELECT COUNT(*) AS n FROM forecasts_latest")
    );
    let prepared = count(
        &data,
        "SELECT COUNT(*) AS n FROM transactions WHERE account_id = '3' AND amount_minor < -5000000",
    );
    assert!(prepared > 0);
    assert_eq!(rows("prepared"), prepared);
    for q in ["transactions", "window", "forecasts", "prepared"] {
        assert_eq!(out["queries"][q]["equal_to_csv"], true, "{q}");
    }
    let types = out["queries"]["transactions"]["schema"].to_string();
    assert!(types.contains("amount_minor:int64"), "{types}");
    assert!(
        types.contains("event_time:timestamp[us, tz=UTC]"),
        "{types}"
    );

    // The catalog lists every table and view with its columns and schema.
    let objects = out["objects"].as_object().unwrap();
    for t in [
        "transactions",
        "quarantine",
        "cashflow_daily",
        "forecasts",
        "forecast_runs",
        "forecasts_latest",
        "runway",
    ] {
        assert!(
            objects.contains_key(t),
            "{t} missing from {:?}",
            objects.keys()
        );
        assert!(
            !out["table_schemas"][t].as_array().unwrap().is_empty(),
            "{t}"
        );
    }
    assert_eq!(objects["forecasts_latest"]["type"], "VIEW");
    assert_eq!(objects["transactions"]["type"], "TABLE");
    assert!(objects["transactions"]["columns"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("amount_minor")));
    assert_eq!(out["table_types"], serde_json::json!(["TABLE", "VIEW"]));

    // Writes and file reads are refused with a reason.
    for sql in refused {
        let why = out["refused"][sql].as_str();
        assert!(why.is_some_and(|w| !w.is_empty()), "{sql} was accepted");
    }
    assert!(!Path::new("/tmp/finopsia-flight-copy.csv").exists());
    // No token and a revoked token are refused.
    for k in ["none", "revoked", "handshake_revoked"] {
        let why = out["auth"][k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} accepted"));
        assert!(
            why.to_lowercase().contains("unauthenticated") || why.contains("token"),
            "{k}: {why}"
        );
    }
    service.stop();
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// A million transactions streamed to pyarrow: every row arrives, in many
/// batches, and the server's peak resident memory stays under a bound far
/// below what holding the result would take.
#[test]
fn a_million_transactions_stream_with_bounded_memory() {
    const ROWS: usize = 1_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut csv = String::with_capacity(ROWS * 80);
    csv.push_str(
        "transaction_id,account_id,amount,currency,direction,description,transaction_date\n",
    );
    for i in 0..ROWS {
        csv.push_str(&format!(
            "t{i},acc{},{}.{:02},NGN,{},Payment {} to Vendor_{},2025-{:02}-{:02}\n",
            i % 50,
            (i * 37) % 90_000 + 1,
            i % 100,
            if i % 3 == 0 { "inflow" } else { "outflow" },
            i % 977,
            i % 131,
            1 + i % 12,
            1 + i % 28
        ));
    }
    let f = tmp.path().join("million.csv");
    std::fs::write(&f, &csv).unwrap();
    drop(csv);
    import(&data, &[f.to_str().unwrap()]);
    let token = create_token(&data);
    let revoked = revoked_token(&data);
    let cfg = write_config(tmp.path(), "[forecast]\nrefresh_interval = \"0\"\n");
    let service = Service::start(&data, &cfg, &[]);
    let addr = flight_addr(&data);
    let pid = service.child.id();
    let before = status_kb(pid, "VmRSS:");
    let out = run_client(
        tmp.path(),
        &serde_json::json!({
            "uri": format!("grpc://{addr}"),
            "token": token,
            "revoked": revoked,
            "queries": [],
            "refused": [],
            "stream": {"sql": "SELECT * FROM transactions"},
        }),
    );
    let peak = status_kb(pid, "VmHWM:");
    let s = &out["stream"];
    eprintln!(
        "streamed {} rows in {} batches, {:.2} s ({:.0} rows/s); server RSS {} MiB before, peak {} MiB",
        s["rows"],
        s["batches"],
        s["seconds"].as_f64().unwrap(),
        s["rows_per_sec"].as_f64().unwrap(),
        before / 1024,
        peak / 1024
    );
    assert_eq!(s["rows"].as_u64(), Some(ROWS as u64));
    assert!(
        s["batches"].as_u64().unwrap() >= 50,
        "streamed in batches: {s}"
    );
    // The bound (README, Flight SQL): the stream raises the server's peak
    // resident memory by less than 128 MiB; the result itself is about
    // 100 MiB as Arrow and would raise it by more if it were collected.
    assert!(
        peak < before + 128 * 1024,
        "peak RSS {} MiB, {} MiB before the stream",
        peak / 1024,
        before / 1024
    );
    service.stop();
}
