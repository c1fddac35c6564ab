//! `/metrics` of `finopsia run` has every family the operations work asks
//! for, with values that agree with the store, and passes
//! `promtool check metrics` (Debian prometheus, installed by tests/run.sh).
//! The same service logs JSON at debug: every line is one JSON object, and
//! the pipeline's events carry their spans (source, batch and its stages,
//! job, http) with structured fields.

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

#[test]
fn metrics_have_every_family_and_agree_with_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let cfg = write_config(
        tmp.path(),
        "[log]\nformat = \"json\"\nspan_timings = true\n",
    );
    let env = [(
        "RUST_LOG",
        "finopsia=info,finopsia_ops=info,finopsia_connectors=info,finopsia_engine=debug,finopsia_serve=debug,warn",
    )];
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
    let log = service.log_path();
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
    spans_in_the_log(&std::fs::read_to_string(log).unwrap());
}

/// The JSON log's events and their spans, as tracing-subscriber writes
/// them: `fields` (the event's), `span` (the innermost) and `spans` (the
/// path from the root).
fn spans_in_the_log(log: &str) {
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let find = |message: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .find(|e| e["fields"]["message"] == message && pred(e))
            .unwrap_or_else(|| panic!("no {message:?} event as expected in:\n{log}"))
            .clone()
    };
    let names = |e: &serde_json::Value| -> Vec<String> {
        e["spans"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The inbox file, in its source's span, with its counts.
    let e = find("file ingested", &|e| {
        e["fields"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("m.csv"))
    });
    assert_eq!(e["span"]["name"], "source", "{e}");
    assert_eq!(e["span"]["source"], "inbox", "{e}");
    assert_eq!(e["fields"]["accepted"], 2, "{e}");
    assert_eq!(e["fields"]["quarantined"], 2, "{e}");
    // Its micro-batch: the batch span names the source, the event the
    // outcome.
    let e = find("micro-batch committed", &|e| {
        e["span"]["sources"] == "inbox" && e["fields"]["quarantined"] == 2
    });
    assert_eq!(e["span"]["name"], "batch", "{e}");
    assert_eq!(e["fields"]["accepted"], 2, "{e}");
    assert!(e["fields"]["seq"].as_i64().is_some(), "{e}");
    assert!(e["fields"]["elapsed_ms"].as_u64().is_some(), "{e}");
    // With span_timings, each stage's end: the Delta commit of
    // `transactions` is a `store` span inside its batch.
    let e = find("close", &|e| {
        e["span"]["name"] == "store" && e["span"]["table"] == "transactions"
    });
    // (A span's own close event lists its parents in `spans`.)
    assert_eq!(names(&e), ["batch"], "{e}");
    assert!(e["fields"]["time.busy"].as_str().is_some(), "{e}");
    // A job's events are in its run's span.
    let e = find("job finished", &|e| e["span"]["job"] == "store_maintenance");
    assert_eq!(names(&e), ["job"], "{e}");
    assert!(
        e["span"]["run_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("store_maintenance-")),
        "{e}"
    );
    assert_eq!(e["span"]["trigger"], "manual", "{e}");
    // An HTTP request: method and path in the span, status in the event,
    // and never a query string or header.
    let e = find("http request", &|e| e["span"]["path"] == "/metrics");
    assert_eq!(e["span"]["name"], "http", "{e}");
    assert_eq!(e["span"]["method"], "GET", "{e}");
    assert_eq!(e["fields"]["status"], 200, "{e}");
}
