//! The service: `finopsia run` with the sample preloaded, forecasts refreshed
//! at start-up and after new data, inbox pickup, processed/failed moves, clean shutdown on SIGINT, and records surviving
//! `kill -9` right after they were reported ingested.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn start(data: &Path, sample: bool) -> Child {
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    let mut args = vec!["run", "--data-dir", data.to_str().unwrap()];
    if sample {
        args.push("--sample");
    }
    finopsia_command()
        .args(&args)
        .env("FINOPSIA__INBOX__POLL_INTERVAL", "100ms")
        .env("FINOPSIA__FORECAST__REFRESH_DEBOUNCE", "200ms")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

fn drop_file(inbox: &Path, name: &str, text: &str) {
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

#[test]
fn service_ingests_inbox_files_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = start(&data, true);
    let log = data.with_extension("log");
    wait_for("service start", Duration::from_secs(120), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watching inbox")
    });
    let n = query(
        &data,
        "SELECT COUNT(*) AS n FROM transactions WHERE source = 'sample'",
    );
    assert_eq!(int(&n[0], "n"), 3000, "sample preloaded");
    let w = query(&data, "SELECT COUNT(*) AS n FROM cashflow_daily");
    assert!(int(&w[0], "n") > 0, "sample aggregated");
    // Forecasts are refreshed in the background at start-up.
    let forecast_runs = |series: &str| {
        if !data.join("tables/forecast_runs/_delta_log").is_dir() {
            return Vec::new();
        }
        query(
            &data,
            &format!("SELECT status FROM forecast_runs WHERE series_id = '{series}'"),
        )
    };
    let took = wait_for("start-up forecasts", Duration::from_secs(120), || {
        !forecast_runs("org_balance/NGN").is_empty()
    });
    eprintln!("start-up forecast refresh done after {took:?}");
    assert_eq!(text(&forecast_runs("org_balance/NGN")[0], "status"), "ok");
    // The sample's made-up anchors: every balance is anchored and has a
    // runway; account 1 held 2,400,000.00 on 2025-09-30 and its flows
    // after that sum to -513,888.
    let rw = query(
        &data,
        "SELECT series_id, balance_basis, last_balance FROM runway ORDER BY series_id",
    );
    assert_eq!(rw.len(), 5, "{rw:?}");
    assert!(
        rw.iter().all(|r| text(r, "balance_basis") == "anchored"),
        "{rw:?}"
    );
    assert_eq!(text(&rw[0], "series_id"), "account_balance/NGN/1");
    assert_eq!(rw[0]["last_balance"].as_f64(), Some(1_886_112.0));
    let anchors = query(
        &data,
        "SELECT COUNT(*) AS n FROM account_balances WHERE source = 'sample'",
    );
    assert_eq!(int(&anchors[0], "n"), 4);

    let inbox = data.join("inbox");
    drop_file(&inbox, "day.csv", "transaction_id,account_id,amount,currency,direction,description,transaction_date\ns1,acc,10.00,USD,inflow,x,2026-01-01\ns2,acc,2.50,USD,outflow,y,2026-01-01\nbad,acc,1.0.0,USD,inflow,z,2026-01-01\n");
    let took = wait_for("processed/day.csv", Duration::from_secs(30), || {
        data.join("processed/day.csv").exists()
    });
    eprintln!("inbox file processed after {took:?}");
    let s = query(
        &data,
        "SELECT SUM(amount_minor) AS s, COUNT(*) AS n FROM transactions WHERE source = 'inbox'",
    );
    assert_eq!((int(&s[0], "s"), int(&s[0], "n")), (750, 2));
    let q = query(
        &data,
        "SELECT reason FROM quarantine WHERE source = 'inbox'",
    );
    assert_eq!(q.len(), 1);
    // The new data triggers a refresh; one day of USD is too little to forecast.
    wait_for(
        "forecast of the new series",
        Duration::from_secs(60),
        || !forecast_runs("account_net_flow/USD/acc").is_empty(),
    );
    assert_eq!(
        text(&forecast_runs("account_net_flow/USD/acc")[0], "status"),
        "no_data"
    );
    assert_eq!(
        forecast_runs("org_balance/NGN").len(),
        1,
        "unchanged series not refit"
    );

    drop_file(&inbox, "broken.csv", "no,header,here\n1,2,3\n");
    wait_for("failed/broken.csv", Duration::from_secs(30), || {
        data.join("failed/broken.csv").exists()
    });
    let note = std::fs::read_to_string(data.join("failed/broken.csv.error.txt")).unwrap();
    assert!(note.contains("lacks required column"), "{note}");

    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no clean shutdown");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    assert_windows_match_batch(&data);
}

#[test]
fn records_reported_ingested_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = start(&data, false);
    let log = data.with_extension("log");
    wait_for("service start", Duration::from_secs(120), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watching inbox")
    });
    let mut text = String::from(
        "transaction_id,account_id,amount,currency,direction,description,transaction_date\n",
    );
    for i in 0..500 {
        text.push_str(&format!(
            "k{i},acc,{i}.01,EUR,inflow,x,2025-06-{:02}\n",
            1 + i % 28
        ));
    }
    drop_file(&data.join("inbox"), "k.csv", &text);
    wait_for("ingested log line", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("file ingested")
    });
    child.kill().unwrap(); // SIGKILL right after the service reported the file
    child.wait().unwrap();
    let s = query(
        &data,
        "SELECT COUNT(*) AS n, SUM(amount_minor) AS total FROM transactions",
    );
    assert_eq!(int(&s[0], "n"), 500);
    assert_eq!(
        int(&s[0], "total"),
        (0..500).map(|i| i * 100 + 1).sum::<i64>()
    );
    assert_windows_match_batch(&data);

    // A restart after the kill recovers cleanly and keeps everything once.
    let mut child = start(&data, false);
    wait_for("restart", Duration::from_secs(120), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watching inbox")
    });
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let s = query(&data, "SELECT COUNT(*) AS n FROM transactions");
    assert_eq!(int(&s[0], "n"), 500);
    assert_windows_match_batch(&data);
}
