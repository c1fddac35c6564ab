//! The InfluxDB sink end to end, against a real `influxd` 1.6.7 and a real
//! VictoriaMetrics on 127.0.0.1: every window-table row, the latest
//! forecasts and the runway read back by InfluxQL with identical values
//! (also after late data corrects a window, and for keys full of line
//! protocol's special characters); the v2 write form with a token; InfluxDB
//! stopped mid-stream, finopsia killed with SIGKILL while the buffer holds
//! points, and a buffer overflow, losing nothing; a 400 putting exactly the
//! refused lines in quarantine.
//!
//! Needs `influxd` and `victoria-metrics` (tests/run.sh installs them).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::influx::{Influxd, Victoria};
use common::service::*;
use common::*;
use finopsia_connectors::influx::lp::decode_tag;

const DB: &str = "finopsia";
const HEADER: &str = "transaction_id,account_id,amount,currency,direction,description,transaction_date,posted_at,category,counterparty";

/// (window start in seconds, account, currency, category) →
/// (inflow, outflow, net, count).
type Windows = BTreeMap<(i64, String, String, String), (i64, i64, i64, i64)>;

fn table_windows(data: &Path) -> Windows {
    query(
        data,
        "SELECT CAST(to_unixtime(window_start) AS BIGINT) AS ws, account_id, currency, \
         COALESCE(category, '') AS category, inflow_minor, outflow_minor, net_minor, tx_count \
         FROM cashflow_daily",
    )
    .iter()
    .map(|r| {
        (
            (
                int(r, "ws"),
                text(r, "account_id").to_string(),
                text(r, "currency").to_string(),
                text(r, "category").to_string(),
            ),
            (
                int(r, "inflow_minor"),
                int(r, "outflow_minor"),
                int(r, "net_minor"),
                int(r, "tx_count"),
            ),
        )
    })
    .collect()
}

fn tag(r: &serde_json::Map<String, serde_json::Value>, k: &str) -> String {
    decode_tag(r.get(k).and_then(|v| v.as_str()).unwrap_or(""))
}

fn influx_windows(influx: &Influxd) -> Windows {
    influx
        .rows(DB, "cashflow_daily")
        .iter()
        .filter(|r| r.get("inflow_minor").is_some_and(|v| !v.is_null()))
        .map(|r| {
            (
                (
                    int(r, "time"),
                    tag(r, "account_id"),
                    tag(r, "currency"),
                    tag(r, "category"),
                ),
                (
                    int(r, "inflow_minor"),
                    int(r, "outflow_minor"),
                    int(r, "net_minor"),
                    int(r, "tx_count"),
                ),
            )
        })
        .collect()
}

fn sink_config(influx: &str, extra: &str) -> String {
    format!(
        "[engine]\nmax_batch_delay = \"50ms\"\nwatermark_delay = \"0\"\nallowed_lateness = \"0\"\n\
         [inbox]\npoll_interval = \"100ms\"\n\
         [forecast]\nrefresh_interval = \"0\"\nhorizon_days = 30\nbacktest_folds = 0\n\
         [sinks.influx]\ntype = \"influxdb\"\nurl = \"{influx}\"\ndatabase = \"{DB}\"\n\
         flush_interval = \"50ms\"\nsync_interval = \"300ms\"\nretry_max_elapsed = \"1s\"\n{extra}"
    )
}

fn row(id: &str, account: &str, minor: i64, day: &str, category: &str) -> String {
    let (amount, dir) = if minor >= 0 {
        (minor, "inflow")
    } else {
        (-minor, "outflow")
    };
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "{id},{},{}.{:02},NGN,{dir},{},{day},,{},",
        q(account),
        amount / 100,
        amount % 100,
        q(&format!("row {id}")),
        q(category)
    )
}

fn wait_equal(what: &str, data: &Path, influx: &Influxd) {
    let t = std::time::Instant::now();
    loop {
        let last = (table_windows(data), influx_windows(influx));
        if !last.0.is_empty() && last.0 == last.1 {
            return;
        }
        if t.elapsed() > Duration::from_secs(90) {
            let missing: Vec<_> = last
                .0
                .iter()
                .filter(|(k, v)| last.1.get(*k) != Some(v))
                .take(3)
                .collect();
            let extra: Vec<_> = last
                .1
                .iter()
                .filter(|(k, v)| last.0.get(*k) != Some(v))
                .take(3)
                .collect();
            panic!(
                "{what}: InfluxDB ({} rows) never equalled cashflow_daily ({} rows); table rows not in InfluxDB: {missing:?}; InfluxDB rows not in the table: {extra:?}",
                last.1.len(),
                last.0.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every window row (sample history by backfill, late corrections, keys
/// with special characters), the latest forecasts and the runway read back
/// exactly; the same emissions reach VictoriaMetrics through the v2 API.
#[test]
fn window_tables_forecasts_and_runway_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let influx = Influxd::start(DB);
    let vm = Victoria::start();
    // A forecast refresh at start-up (and no other during the test), so
    // that the job metrics have a run to show.
    let body = sink_config(
        &influx.url,
        &format!(
            "[sinks.vm]\ntype = \"influxdb\"\napi = \"v2\"\nurl = \"{}\"\norg = \"acme\"\nbucket = \"cash\"\n\
             token = \"secret-token\"\nflush_interval = \"50ms\"\nsync_interval = \"0\"\n",
            vm.url
        ),
    )
    .replace(
        "refresh_interval = \"0\"",
        "refresh_interval = \"1h\"\nrefresh_debounce = \"1h\"",
    )
    // A known balance for account 1, so that it has a runway.
    .replace(
        "backtest_folds = 0\n",
        "backtest_folds = 0\n[[forecast.anchors]]\naccount = \"1\"\nas_of = \"2025-09-30\"\nbalance = \"2400000\"\n",
    );
    let config = write_config(tmp.path(), &body);
    // History first: the sample, and a forecast refresh over it.
    let sample = tmp.path().join("sample.csv");
    std::fs::write(&sample, finopsia_core::SAMPLE_CSV).unwrap();
    import(
        &data,
        &["--preset", "finopsia-seed", sample.to_str().unwrap()],
    );
    // A monthly rent, so that the recurring measurement has a pattern (the
    // sample has none).
    let rent: Vec<String> = (1..=11)
        .map(|m| {
            format!("rent-{m},1,Office rent,Rent,250000,outflow,{m}/1/2025 0:00,{m}/1/2025 0:00")
        })
        .collect();
    let rent_file = tmp.path().join("rent.csv");
    std::fs::write(
        &rent_file,
        format!("transaction_id,account_id,description,category,amount,direction,transaction_date,posted_at\n{}\n", rent.join("\n")),
    )
    .unwrap();
    import(
        &data,
        &[
            "--preset",
            "finopsia-seed",
            "--source",
            "rent",
            rent_file.to_str().unwrap(),
        ],
    );
    let out = finopsia_command()
        .args(["forecast", "--json", "--data-dir", data.to_str().unwrap()])
        .env("FINOPSIA_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A new sink gets the window tables' history by a backfill.
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    service.wait_for_log("backfill done");
    wait_equal("the backfill", &data, &influx);

    // Late data correcting sample windows, and keys with every special
    // character of line protocol, newlines and non-ASCII text.
    let weird_account = "acc, one=\"two\" \\ back\\\\slash\nline two ₦ é %41";
    let weird_category = "Cat = \"x\", y \\ z\r\n%25 naïve";
    let days = query(
        &data,
        "SELECT account_id, CAST(CAST(window_start AS DATE) AS VARCHAR) AS d FROM cashflow_daily ORDER BY window_start LIMIT 3",
    );
    let mut rows: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, r)| {
            row(
                &format!("late{i}"),
                text(r, "account_id"),
                12_345 + i as i64,
                text(r, "d"),
                "Sales",
            )
        })
        .collect();
    rows.push(row(
        "w1",
        weird_account,
        -9_999,
        "2025-06-02",
        weird_category,
    ));
    rows.push(row("w2", weird_account, 1, "2025-06-02", weird_category));
    drop_file(
        &data.join("inbox"),
        "late.csv",
        &format!("{HEADER}\n{}\n", rows.join("\n")),
    );
    wait_for("late.csv", Duration::from_secs(60), || {
        data.join("processed/late.csv").exists()
    });
    wait_equal("late data and special characters", &data, &influx);
    let table = table_windows(&data);
    assert!(
        table
            .keys()
            .any(|k| k.1 == weird_account && k.3 == weird_category),
        "the special-character row is a window row: {:?}",
        table
            .keys()
            .filter(|k| k.1.contains("acc,"))
            .collect::<Vec<_>>()
    );
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM quarantine"), 0);

    // Pipeline metrics: the start-up forecast refresh as a job, the
    // watermark and event-time lag of the last commit. (After this the
    // refresh is done, so forecasts_latest no longer changes.)
    wait_for(
        "job and event-time metrics",
        Duration::from_secs(180),
        || {
            let jobs = influx.rows(DB, "finopsia_job");
            let pipeline = influx.rows(DB, "finopsia_pipeline");
            jobs.iter().any(|r| {
                r["job"] == "forecast_refresh"
                    && r["status"] == "ok"
                    && r["runs"].as_i64() >= Some(1)
            }) && pipeline.iter().any(|r| {
                r["watermark_delay_s"].as_f64().is_some_and(|d| d > 0.0)
                    && r["event_lag_s"].as_f64().is_some_and(|d| d > 0.0)
                    && r["last_batch_ms"].as_i64().is_some()
            })
        },
    );

    // The latest forecast of every series, and the runway.
    let forecasts = query(
        &data,
        "SELECT series_id, CAST(to_unixtime(CAST(ds AS TIMESTAMP)) AS BIGINT) AS t, yhat, yhat_lower, yhat_upper, run_id FROM forecasts_latest",
    );
    assert!(forecasts.len() > 100, "{} forecast rows", forecasts.len());
    type Fc = BTreeMap<(String, i64), (f64, f64, f64, i64)>;
    let want: Fc = forecasts
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_f64().unwrap();
            (
                (text(r, "series_id").to_string(), int(r, "t")),
                (
                    f("yhat"),
                    f("yhat_lower"),
                    f("yhat_upper"),
                    int(r, "run_id"),
                ),
            )
        })
        .collect();
    let got = || -> Fc {
        influx
            .rows(DB, "forecast")
            .iter()
            .map(|r| {
                let f = |k: &str| r[k].as_f64().unwrap();
                (
                    (tag(r, "series"), int(r, "time")),
                    (f("yhat"), f("lower"), f("upper"), int(r, "run_id")),
                )
            })
            .collect()
    };
    wait_for("the forecasts in InfluxDB", Duration::from_secs(60), || {
        got() == want
    });
    let runway = query(
        &data,
        "SELECT series_id, CAST(to_unixtime(CAST(as_of AS TIMESTAMP)) AS BIGINT) AS t, last_balance, lowest_balance, \
         CAST(lowest_date AS VARCHAR) AS lowest_date FROM runway",
    );
    assert!(!runway.is_empty());
    let influx_runway: BTreeMap<(String, i64), (f64, f64, String)> = influx
        .rows(DB, "runway")
        .iter()
        .map(|r| {
            (
                (tag(r, "series"), int(r, "time")),
                (
                    r["last_balance"].as_f64().unwrap(),
                    r["lowest_balance"].as_f64().unwrap(),
                    text(r, "lowest_date").to_string(),
                ),
            )
        })
        .collect();
    for r in &runway {
        let key = (text(r, "series_id").to_string(), int(r, "t"));
        assert_eq!(
            influx_runway.get(&key),
            Some(&(
                r["last_balance"].as_f64().unwrap(),
                r["lowest_balance"].as_f64().unwrap(),
                text(r, "lowest_date").to_string()
            )),
            "runway of {key:?}"
        );
    }
    assert_eq!(influx_runway.len(), runway.len());
    assert!(
        count(&data, "SELECT COUNT(*) AS n FROM recurring") >= 1,
        "the rent is a recurring pattern"
    );
    assert!(!influx.rows(DB, "recurring").is_empty());
    // Pipeline metrics arrive too.
    wait_for("pipeline metrics", Duration::from_secs(30), || {
        !influx.rows(DB, "finopsia_sink").is_empty()
    });

    dashboards_read_data(&influx);

    // VictoriaMetrics accepted the v2 form (token header, org, bucket): a
    // series per window row, holding the row's value (VictoriaMetrics keeps
    // every sample, so a corrected window also holds its earlier value).
    let t = std::time::Instant::now();
    loop {
        let mut got: BTreeMap<(i64, String, String, String), Vec<i64>> = BTreeMap::new();
        for s in vm.export("{__name__=\"cashflow_daily_net_minor\"}") {
            let m = &s["metric"];
            let values = s["values"].as_array().unwrap();
            let stamps = s["timestamps"].as_array().unwrap();
            for (v, ts) in values.iter().zip(stamps) {
                got.entry((
                    ts.as_i64().unwrap() / 1000,
                    decode_tag(m["account_id"].as_str().unwrap_or("")),
                    decode_tag(m["currency"].as_str().unwrap_or("")),
                    decode_tag(m["category"].as_str().unwrap_or("")),
                ))
                .or_default()
                .push(v.as_f64().unwrap() as i64);
            }
        }
        let complete = table.len() == got.len()
            && table
                .iter()
                .all(|(k, v)| got.get(k).is_some_and(|vs| vs.contains(&v.2)));
        if complete {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "VictoriaMetrics has {} net_minor series, the table {} rows",
            got.len(),
            table.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    service.stop();

    // `finopsia import` while the service is down, with the sinks
    // configured: its emissions wait in the outbox for the next start.
    let later: Vec<String> = (0..12)
        .map(|i| {
            row(
                &format!("cli{i}"),
                &format!("acc-{}", i % 3),
                (i as i64 - 4) * 2_500,
                &format!("2025-10-{:02}", 1 + i % 6),
                "Supplies",
            )
        })
        .collect();
    let later_file = tmp.path().join("later.csv");
    std::fs::write(&later_file, format!("{HEADER}\n{}\n", later.join("\n"))).unwrap();
    let out = finopsia_command()
        .args(["import", "--json", "--data-dir", data.to_str().unwrap()])
        .arg(&later_file)
        .env("FINOPSIA_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waiting = std::fs::read_dir(data.join("state/outbox"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".arrow"))
        .count();
    assert!(waiting > 0, "the import's emissions wait in the outbox");
    // A window table the user adds with a query file reaches InfluxDB
    // under its own name, with every row.
    let queries = queries_dir(
        tmp.path(),
        &[(
            "account_weekly.sql",
            "INSERT INTO account_weekly SELECT tumble(interval '7 days') AS window, account_id, currency, \
             SUM(amount_minor) AS net_minor, COUNT(*) AS tx_count, MAX(amount_minor) AS largest_minor \
             FROM transactions GROUP BY window, account_id, currency",
        )],
    );
    let config = write_config(
        tmp.path(),
        &format!("queries_dir = \"{}\"\n{body}", queries.display()),
    );
    let service = Service::start(&data, &config, &[]);
    wait_equal(
        "a CLI import made while the service was down",
        &data,
        &influx,
    );
    type Weekly = BTreeMap<(i64, String, String), (i64, i64, i64)>;
    let weekly_table: Weekly = query(
        &data,
        "SELECT CAST(to_unixtime(window_start) AS BIGINT) AS ws, account_id, currency, net_minor, tx_count, largest_minor FROM account_weekly",
    )
    .iter()
    .map(|r| {
        (
            (int(r, "ws"), text(r, "account_id").to_string(), text(r, "currency").to_string()),
            (int(r, "net_minor"), int(r, "tx_count"), int(r, "largest_minor")),
        )
    })
    .collect();
    assert!(
        weekly_table.len() > 50,
        "{} weekly rows",
        weekly_table.len()
    );
    let weekly_influx = || -> Weekly {
        influx
            .rows(DB, "account_weekly")
            .iter()
            .map(|r| {
                (
                    (int(r, "time"), tag(r, "account_id"), tag(r, "currency")),
                    (
                        int(r, "net_minor"),
                        int(r, "tx_count"),
                        int(r, "largest_minor"),
                    ),
                )
            })
            .collect()
    };
    wait_for(
        "account_weekly in InfluxDB",
        Duration::from_secs(60),
        || weekly_influx() == weekly_table,
    );
    service.stop();
}

/// InfluxDB stopped while finopsia is killed with SIGKILL with points
/// buffered; InfluxDB stopped again long enough to overflow the buffer:
/// both end with InfluxDB equal to the window table, and ingestion never
/// waited for InfluxDB.
#[test]
fn influxdb_outages_and_a_kill9_with_points_buffered_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    let mut influx = Influxd::start(DB);
    let config = write_config(
        tmp.path(),
        &sink_config(&influx.url, "buffer_entries = 4\n"),
    );
    let file = |n: usize| -> String {
        let rows: Vec<String> = (0..20)
            .map(|i| {
                // New days and corrections of earlier ones.
                let day = format!("2025-07-{:02}", 1 + (n * 3 + i) % 28);
                row(
                    &format!("f{n}-{i}"),
                    &format!("acc-{}", i % 3),
                    (i as i64 - 7) * 1_001,
                    &day,
                    &format!("c{}", i % 4),
                )
            })
            .collect();
        format!("{HEADER}\n{}\n", rows.join("\n"))
    };
    let drop_and_wait = |n: usize| {
        drop_file(&inbox, &format!("f{n}.csv"), &file(n));
        wait_for(&format!("f{n}.csv"), Duration::from_secs(60), || {
            data.join(format!("processed/f{n}.csv")).exists()
        });
    };
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    for n in 0..2 {
        drop_and_wait(n);
    }
    wait_equal("before the outage", &data, &influx);

    // 1. InfluxDB goes away; two files are ingested anyway; their
    //    emissions wait in the outbox; finopsia is killed.
    influx.pause();
    for n in 2..4 {
        drop_and_wait(n);
    }
    let buffered = std::fs::read_dir(data.join("state/outbox"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".arrow"))
        .count();
    assert!(buffered >= 2, "emissions wait in the outbox ({buffered})");
    service.kill9();
    influx.resume();
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    wait_equal("after the kill -9", &data, &influx);

    // 2. A longer outage: more emissions than the buffer holds. Ingestion
    //    goes on, the buffer is dropped, and a backfill restores the rest.
    influx.pause();
    for n in 4..11 {
        drop_and_wait(n);
    }
    service.wait_for_log("sink buffer full");
    influx.resume();
    service.wait_for_log("backfill done");
    wait_equal("after the overflow", &data, &influx);
    assert_windows_match_batch(&data);
    service.stop();
}

/// https: a server whose certificate the system does not trust is refused
/// (the log says why, the emissions wait in the outbox); with its CA in
/// `ca_file`, everything buffered is delivered.
#[test]
fn https_needs_a_trusted_certificate_and_then_delivers_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    let influx = Influxd::start_tls(DB);
    assert!(influx.url.starts_with("https://"), "{}", influx.url);
    let ca = influx.ca.clone().expect("a CA");
    let rows: Vec<String> = (0..30)
        .map(|i| {
            row(
                &format!("t{i}"),
                &format!("acc-{}", i % 2),
                (i as i64 - 10) * 1_234,
                &format!("2025-08-{:02}", 1 + i % 9),
                "fees",
            )
        })
        .collect();
    // 1. Without the CA: refused, nothing written, the reason logged.
    let config = write_config(tmp.path(), &sink_config(&influx.url, ""));
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    drop_file(&inbox, "t.csv", &format!("{HEADER}\n{}\n", rows.join("\n")));
    service.wait_for_log("sink delivery failed; retrying");
    let log = service.log();
    assert!(
        log.to_lowercase().contains("certificate"),
        "the log says the certificate is the problem:\n{log}"
    );
    assert!(influx.rows(DB, "cashflow_daily").is_empty());
    service.stop();
    // 2. With the CA: what waited in the outbox arrives.
    let config = write_config(
        tmp.path(),
        &sink_config(&influx.url, &format!("ca_file = \"{}\"\n", ca.display())),
    );
    let service = Service::start(&data, &config, &[]);
    wait_equal("over https with ca_file", &data, &influx);
    assert_eq!(table_windows(&data).len(), 18, "2 accounts x 9 days");
    service.stop();
}

/// A 400 from the server (a field type conflict, a real influxd answer)
/// puts exactly the refused lines in quarantine, with its message, and the
/// rest is delivered.
#[test]
fn refused_lines_go_to_quarantine_and_the_rest_is_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let influx = Influxd::start(DB);
    // net_minor as a string on 2025-05-05: the integer net_minor of any
    // window in that shard (a week) is refused with 400.
    let conflict_day = 1_746_403_200i64; // 2025-05-05T00:00:00Z
    let (code, body) = influx.write(
        DB,
        &format!(
            "cashflow_daily,account_id=zz net_minor=\"text\" {}",
            conflict_day * 1_000_000_000
        ),
    );
    assert_eq!(code, 204, "{body}");
    let config = write_config(tmp.path(), &sink_config(&influx.url, ""));
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    let rows = [
        row("r1", "acc-a", 100, "2025-05-05", "x"),
        row("r2", "acc-b", -250, "2025-05-05", "y"),
        row("r3", "acc-a", 700, "2025-06-20", "x"),
        row("r4", "acc-b", 900, "2025-07-25", "y"),
    ];
    drop_file(
        &data.join("inbox"),
        "r.csv",
        &format!("{HEADER}\n{}\n", rows.join("\n")),
    );
    wait_for("r.csv", Duration::from_secs(60), || {
        data.join("processed/r.csv").exists()
    });
    wait_for(
        "the refused lines in quarantine",
        Duration::from_secs(60),
        || {
            count(
                &data,
                "SELECT COUNT(*) AS n FROM quarantine WHERE reason = 'sink_rejected'",
            ) == 2
        },
    );
    let q = query(
        &data,
        "SELECT source, detail, raw FROM quarantine WHERE reason = 'sink_rejected'",
    );
    for r in &q {
        assert_eq!(text(r, "source"), "sinks.influx");
        assert!(text(r, "detail").contains("field type conflict"), "{r:?}");
        assert!(
            text(r, "raw").starts_with("cashflow_daily,account_id=acc-"),
            "{r:?}"
        );
        assert!(
            text(r, "raw").ends_with(&format!(" {}", conflict_day * 1_000_000_000)),
            "{r:?}"
        );
    }
    // Everything else is in InfluxDB, exactly.
    let want: Windows = table_windows(&data)
        .into_iter()
        .filter(|(k, _)| k.0 != conflict_day)
        .collect();
    assert_eq!(want.len(), 2);
    wait_for("the rest delivered", Duration::from_secs(60), || {
        influx_windows(&influx) == want
    });
    // Restarting does not quarantine them again.
    service.stop();
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("watching inbox");
    std::thread::sleep(Duration::from_secs(1));
    service.stop();
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM quarantine WHERE reason = 'sink_rejected'"
        ),
        2
    );
}

/// Every dashboard panel's and variable's datasource is the provisioned
/// one, and every panel query (Grafana's macros and template variables
/// filled in) returns data from the InfluxDB the sink wrote.
fn dashboards_read_data(influx: &Influxd) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let provisioned =
        std::fs::read_to_string(root.join("provisioning/datasources/influxdb.yaml")).unwrap();
    let uid = provisioned
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid: "))
        .expect("a datasource uid")
        .trim()
        .to_string();
    assert!(
        provisioned.contains("type: influxdb") && provisioned.contains(&format!("dbName: {DB}"))
    );
    let series = influx.query(
        "SHOW TAG VALUES FROM \"forecast\" WITH KEY = \"series\"",
        Some(DB),
    );
    let a_series = series[0]["values"][0][1].as_str().unwrap().to_string();
    let mut panels = 0;
    for entry in std::fs::read_dir(root.join("json")).unwrap() {
        let path = entry.unwrap().path();
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let check_ds = |v: &serde_json::Value, what: &str| {
            if let Some(ds) = v.get("datasource") {
                assert_eq!(
                    ds["uid"].as_str(),
                    Some(uid.as_str()),
                    "{name}: {what} uses another datasource"
                );
            }
        };
        for v in d["templating"]["list"].as_array().unwrap() {
            check_ds(v, v["name"].as_str().unwrap());
            if let Some(q) = v["query"].as_str().filter(|_| v["type"] == "query") {
                assert!(
                    !influx.query(q, Some(DB)).is_empty(),
                    "{name}: variable {} has no values",
                    v["name"]
                );
            }
        }
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            check_ds(p, title);
            for target in p["targets"].as_array().unwrap() {
                check_ds(target, title);
                // The pipeline dashboard shows the last hours (metrics are
                // written every sync); the others the data's years.
                let (range, interval) = if d["time"]["from"] == "now-6h" {
                    ("time > now() - 1h", "1s")
                } else {
                    (
                        "time >= '2019-01-01T00:00:00Z' AND time <= now() + 60d",
                        "7d",
                    )
                };
                let q = target["query"]
                    .as_str()
                    .unwrap()
                    .replace("$timeFilter", range)
                    .replace("$__interval", interval)
                    .replace("$scale", "100")
                    .replace("$period", "30d")
                    .replace("$series", &a_series)
                    .replace("$currency", "NGN")
                    .replace("$account", ".*")
                    .replace("$category", ".*");
                let got = influx.query(&q, Some(DB));
                let values: usize = got
                    .iter()
                    .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
                    .sum();
                assert!(values > 0, "{name}: panel {title:?} returns no data: {q}");
                panels += 1;
            }
        }
    }
    assert!(panels >= 15, "{panels} panel queries checked");
}
