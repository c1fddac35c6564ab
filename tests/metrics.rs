//! `/metrics` of `finopsia run` has every family the operations work asks
//! for, with values that agree with the store, and passes
//! `promtool check metrics` (Debian prometheus, installed by tests/run.sh).

mod common;

use std::time::Duration;

use common::http::*;
use common::service::*;
use common::*;

const HEADER: &str = "transaction_id,account_id,amount,currency,direction,description,transaction_date,posted_at,category,counterparty";

/// The value of the sample line starting with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn promtool_check(text: &str) {
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

#[test]
fn metrics_have_every_family_and_agree_with_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let cfg = write_config(tmp.path(), "");
    let env = [("RUST_LOG", "finopsia=info,finopsia_ops=info,warn")];
    let mut service = Service::start_with_args(&data, &cfg, &env, &["--sample"]);
    // The forecast refresh runs at start.
    service.wait_for_log("job finished");
    drop_file(
        &inbox,
        "m.csv",
        &format!(
            "{HEADER}\nm1,acc-1,12.50,NGN,outflow,Paper,2025-07-01,,Office,\n\
             m2,acc-1,12.5x,NGN,outflow,Ink,2025-07-01,,Office,\n\
             m3,acc-1,1.00,NGN,sideways,Pen,2025-07-01,,Office,\n\
             m4,acc-1,2.00,NGN,outflow,Pad,2025-07-02,,Office,\n"
        ),
    );
    wait_for("m.csv", Duration::from_secs(60), || {
        data.join("processed/m.csv").exists()
    });
    ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "job",
        "run",
        "store_maintenance",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let addr = service_addr(&data).expect("http.json");
    // The store gauges are read again after each job run: wait until they
    // show the store as it is now.
    let tables = || -> serde_json::Value {
        let out = finopsia(&[
            "status",
            "--tables",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tables"].clone()
    };
    let mut text = String::new();
    wait_for("the gauges after the job", Duration::from_secs(30), || {
        text = get(&addr, "/metrics", None).text();
        let t = tables();
        value(
            &text,
            "finopsia_job_duration_seconds_count{job=\"store_maintenance\"}",
        ) == Some(1.0)
            && ["transactions", "quarantine", "cashflow_daily"]
                .iter()
                .all(|n| {
                    value(
                        &text,
                        &format!("finopsia_store_table_version{{table=\"{n}\"}}"),
                    ) == t[n]["version"].as_f64()
                        && value(
                            &text,
                            &format!("finopsia_store_table_files{{table=\"{n}\"}}"),
                        ) == t[n]["files"].as_f64()
                })
    });
    service.stop();

    for family in [
        "finopsia_records_total counter",
        "finopsia_quarantined_total counter",
        "finopsia_batch_duration_seconds histogram",
        "finopsia_watermark_seconds gauge",
        "finopsia_event_lag_seconds gauge",
        "finopsia_open_windows gauge",
        "finopsia_job_runs_total counter",
        "finopsia_job_duration_seconds histogram",
        "finopsia_model_info gauge",
        "finopsia_model_age_seconds gauge",
        "finopsia_forecast_age_seconds gauge",
        "finopsia_store_table_version gauge",
        "finopsia_store_table_files gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family} missing:\n{text}"
        );
    }
    // Rejects by source and reason; records by outcome.
    let q = |reason: &str| {
        value(
            &text,
            &format!("finopsia_quarantined_total{{source=\"inbox\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(q("invalid_amount"), Some(1.0), "{text}");
    assert_eq!(q("invalid_direction"), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            "finopsia_records_total{source=\"inbox\",outcome=\"quarantined\"}"
        ),
        Some(2.0)
    );
    // The histogram's +Inf bucket is its count, and it counted the batch.
    let batches = value(&text, "finopsia_batch_duration_seconds_count").unwrap();
    assert!(batches >= 1.0);
    assert_eq!(
        value(&text, "finopsia_batch_duration_seconds_bucket{le=\"+Inf\"}"),
        Some(batches)
    );
    assert!(value(&text, "finopsia_open_windows{table=\"cashflow_daily\"}").is_some());
    assert_eq!(
        value(
            &text,
            "finopsia_job_runs_total{job=\"forecast_refresh\",outcome=\"ok\"}"
        ),
        Some(1.0)
    );
    // After compaction every table the job compacted reads one file.
    assert_eq!(
        value(&text, "finopsia_store_table_files{table=\"transactions\"}"),
        Some(1.0)
    );
    let series = count(
        &data,
        "SELECT COUNT(DISTINCT series_id) AS n FROM forecast_runs \
         WHERE status IN ('ok', 'short_history', 'fallback')",
    );
    let ages: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("finopsia_forecast_age_seconds{series="))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(series > 0);
    assert_eq!(ages.len() as i64, series, "{text}");
    assert!(ages.iter().all(|a| (0.0..600.0).contains(a)), "{ages:?}");
    assert!(text.contains("finopsia_model_info{version=\""), "{text}");
    assert!(value(&text, "finopsia_model_age_seconds").unwrap() > 0.0);

    promtool_check(&text);
}
