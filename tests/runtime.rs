//! The streaming runtime end to end, with a real NATS JetStream server on
//! 127.0.0.1: the inbox and a NATS source at once, the writer lock, kill -9
//! at random moments while a publisher sends (exactly the generated set
//! stored, every bad record quarantined once, windows equal to a batch
//! GROUP BY, nothing left pending on the durable consumer), and a webhook
//! sink that fails for a while, then a crash between a window commit and
//! its delivery.
//!
//! Needs `nats-server`: `FINOPSIA_TEST_NATS_SERVER` (set by tests/run.sh).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::nats::{consumer_backlog, jetstream, NatsServer};
use common::service::*;
use common::webhook::Receiver;
use common::*;

const STREAM: &str = "TXNS";
const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn nats_config(url: &str) -> String {
    format!(
        "[engine]\nmax_batch_delay = \"100ms\"\nwatermark_delay = \"0\"\nallowed_lateness = \"0\"\n\
         [inbox]\npoll_interval = \"100ms\"\n\
         [forecast]\nrefresh_interval = \"0\"\n\
         [sources.orders]\ntype = \"nats\"\nservers = [\"{url}\"]\nstream = \"{STREAM}\"\n\
         subject = \"txns.>\"\nformat = \"ndjson\"\nbatch = 200\nmax_wait = \"200ms\"\nack_wait = \"5s\"\n"
    )
}

fn ndjson(id: &str, minor: i64, day: u32) -> String {
    let (amount, dir) = if minor >= 0 {
        (minor, "inflow")
    } else {
        (-minor, "outflow")
    };
    format!(
        "{{\"transaction_id\":\"{id}\",\"account_id\":\"acc-{}\",\"amount\":\"{}.{:02}\",\"currency\":\"USD\",\"direction\":\"{dir}\",\"description\":\"nats {id}\",\"transaction_date\":\"2025-03-{day:02}\"}}",
        id.len() % 3,
        amount / 100,
        amount % 100
    )
}

#[test]
fn inbox_and_nats_at_once_and_a_second_writer_is_refused() {
    let nats = NatsServer::start();
    let rt = runtime();
    let js = rt.block_on(jetstream(&nats.url, STREAM, &["txns.>"]));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), &nats_config(&nats.url));
    let mut service = Service::start(&data, &config, &[]);
    service.wait_for_log("consuming NATS JetStream");

    // Publish to NATS while files arrive in the inbox.
    let inbox = data.join("inbox");
    for i in 0..20 {
        let lines: Vec<String> = (0..10)
            .map(|j| {
                ndjson(
                    &format!("n{i}-{j}"),
                    (i * 10 + j) as i64 * 7 + 1,
                    1 + (i % 5) as u32,
                )
            })
            .collect();
        rt.block_on(async {
            js.publish(format!("txns.{}", i % 3), lines.join("\n").into())
                .await
                .unwrap()
                .await
                .unwrap()
        });
        if i % 5 == 0 {
            let rows: Vec<String> = (0..10)
                .map(|j| {
                    format!(
                        "f{i}-{j},acc,{}.00,USD,inflow,file row,2025-03-0{}",
                        j + 1,
                        1 + j % 5
                    )
                })
                .collect();
            drop_file(
                &inbox,
                &format!("f{i}.csv"),
                &format!("{HEADER}\n{}\n", rows.join("\n")),
            );
        }
    }
    // A message whose only record is bad: acked once its reject commits.
    rt.block_on(async {
        js.publish(
            "txns.bad",
            "{\"transaction_id\":\"bad1\",\"account_id\":\"acc\",\"amount\":\"5.001\",\"currency\":\"USD\",\"direction\":\"inflow\",\"description\":\"x\",\"transaction_date\":\"2025-03-01\"}".into(),
        )
            .await
            .unwrap()
            .await
            .unwrap()
    });
    wait_for("every record", Duration::from_secs(60), || {
        count(&data, "SELECT COUNT(*) AS n FROM transactions") == 240
    });
    let by_source = query(
        &data,
        "SELECT source, COUNT(*) AS n FROM transactions GROUP BY source ORDER BY source",
    );
    assert_eq!(text(&by_source[0], "source"), "inbox");
    assert_eq!(int(&by_source[0], "n"), 40);
    assert_eq!(text(&by_source[1], "source"), "orders");
    assert_eq!(int(&by_source[1], "n"), 200);
    wait_for("the bad record's reject", Duration::from_secs(30), || {
        count(
            &data,
            "SELECT COUNT(*) AS n FROM quarantine WHERE source = 'orders'",
        ) == 1
    });
    let q = query(
        &data,
        "SELECT file, line, reason FROM quarantine WHERE source = 'orders'",
    );
    assert!(text(&q[0], "file").starts_with("txns.bad#"), "{q:?}");
    assert_eq!(text(&q[0], "reason"), "amount_precision");
    wait_for("the consumer to drain", Duration::from_secs(30), || {
        rt.block_on(consumer_backlog(&js, STREAM, "orders")) == Some((0, 0))
    });

    // A second writer is refused at once and writes nothing.
    let before = std::fs::read_dir(data.join("tables/transactions/_delta_log"))
        .unwrap()
        .count();
    let extra = tmp.path().join("extra.csv");
    std::fs::write(
        &extra,
        format!("{HEADER}\nx1,acc,1.00,USD,inflow,x,2025-03-01\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = finopsia(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        extra.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is being written by")
            && err.contains("finopsia run")
            && err.contains("pid")
            && err.contains("inbox"),
        "{err}"
    );
    for cmd in [
        vec![
            "correct",
            "--transaction-id",
            "f0-1",
            "--source",
            "inbox",
            "--category",
            "X",
        ],
        vec!["forecast"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--data-dir", data.to_str().unwrap()]);
        let out = finopsia(&args);
        assert!(!out.status.success(), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is being written by"),
            "{cmd:?}"
        );
    }
    let after = std::fs::read_dir(data.join("tables/transactions/_delta_log"))
        .unwrap()
        .count();
    assert_eq!(before, after, "the refused import wrote nothing");
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM transactions WHERE transaction_id = 'x1'"
        ),
        0
    );
    // Reading works while the service writes.
    assert!(count(&data, "SELECT COUNT(*) AS n FROM cashflow_daily") > 0);

    // After kill -9 the lock is free: the import goes through.
    service.kill9();
    let r = import(&data, &[extra.to_str().unwrap()]);
    assert_eq!(r["accepted"], 1, "{r}");
}

/// A source whose broker is down is retried with backoff and reported while
/// the inbox keeps working; once the broker is up its records flow.
/// SIGTERM while the service is still starting (loading the sample) is
/// kept and stops it cleanly once it runs, instead of killing the process
/// half-way through start-up (a supervisor stopping a service right after
/// starting it must see a clean exit).
#[test]
fn sigterm_during_startup_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), "[forecast]\nrefresh_interval = \"0\"\n");
    let mut service = Service::start_with_args(&data, &config, &[], &["--sample"]);
    service.wait_for_log("starting");
    assert!(
        !service.log().contains("sample data loaded"),
        "the signal must arrive during start-up:\n{}",
        service.log()
    );
    let log = service.log_path();
    service.stop();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("sample data loaded"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn a_failing_source_is_retried_and_does_not_stop_the_others() {
    let port = common::nats::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), &nats_config(&url));
    let service = Service::start(&data, &config, &[]);
    wait_for("the inbox", Duration::from_secs(120), || {
        service.log().contains("watching inbox")
    });
    drop_file(
        &data.join("inbox"),
        "a.csv",
        &format!(
            "{HEADER}
a1,acc,1.00,USD,inflow,x,2025-03-01
"
        ),
    );
    wait_for("a.csv", Duration::from_secs(60), || {
        data.join("processed/a.csv").exists()
    });
    wait_for("the failure report", Duration::from_secs(30), || {
        service.log().contains("source failed; restarting it")
    });
    assert!(service.log().contains("orders"), "{}", service.log());
    let nats = NatsServer::start_on(port);
    let rt = runtime();
    let js = rt.block_on(jetstream(&nats.url, STREAM, &["txns.>"]));
    rt.block_on(async {
        js.publish("txns.1", ndjson("late1", 250, 2).into())
            .await
            .unwrap()
            .await
            .unwrap()
    });
    wait_for("the NATS record", Duration::from_secs(90), || {
        count(
            &data,
            "SELECT COUNT(*) AS n FROM transactions WHERE source = 'orders'",
        ) == 1
    });
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 2);
    service.stop();
}

/// The generated feed: unique good records, some re-published identically
/// (duplicates), and unique bad records (quarantined once each).
struct Feed {
    messages: Vec<(String, String)>,
    good: BTreeSet<String>,
    total_minor: i64,
    bad: usize,
}

fn generate(records: usize) -> Feed {
    let mut messages = Vec::new();
    let mut good = BTreeSet::new();
    let mut total = 0i64;
    let mut bad = 0;
    let mut i = 0usize;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut recent: Vec<String> = Vec::new();
    while i < records {
        let n = 1 + (rand() % 40) as usize;
        let mut lines = Vec::new();
        for _ in 0..n.min(records - i) {
            let id = format!("n{i}");
            let minor = (rand() % 200_000) as i64 - 90_000;
            let minor = if minor == 0 { 1 } else { minor };
            let day = 1 + (i * 28 / records) as u32;
            let line = ndjson(&id, minor, day);
            lines.push(line.clone());
            good.insert(id);
            total += minor;
            recent.push(line);
            i += 1;
            if rand().is_multiple_of(50) {
                // An identical re-delivery of an earlier record.
                let k = (rand() as usize) % recent.len();
                lines.push(recent[k].clone());
            }
            if rand().is_multiple_of(100) {
                bad += 1;
                lines.push(format!(
                    "{{\"transaction_id\":\"bad{bad}\",\"account_id\":\"acc\",\"amount\":\"1.001\",\"currency\":\"USD\",\"direction\":\"inflow\",\"description\":\"bad\",\"transaction_date\":\"2025-03-01\"}}"
                ));
            }
        }
        if recent.len() > 500 {
            recent.drain(..250);
        }
        messages.push((format!("txns.{}", messages.len() % 4), lines.join("\n")));
    }
    Feed {
        messages,
        good,
        total_minor: total,
        bad,
    }
}

#[test]
fn kill9_at_random_moments_while_publishing_loses_and_doubles_nothing() {
    let nats = NatsServer::start();
    let rt = runtime();
    let js = rt.block_on(jetstream(&nats.url, STREAM, &["txns.>"]));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), &format!("{}\n", nats_config(&nats.url)));
    let feed = generate(100_000);
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();

    // The publisher runs on its own thread for the whole test.
    let messages = feed.messages.clone();
    let url = nats.url.clone();
    let publisher = std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async {
            let client = async_nats::connect(&url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let started = Instant::now();
            let n = messages.len();
            for (k, (subject, body)) in messages.into_iter().enumerate() {
                js.publish(subject, body.into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                // Spread over ~12 s.
                let due = Duration::from_millis((k as u64 * 12_000) / n as u64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        })
    });

    // Files keep arriving, each with a bad row.
    let mut file_good = 0usize;
    let mut file_total = 0i64;
    let mut file_ids = BTreeSet::new();
    let mut drop_next = |k: usize| {
        let mut text = format!("{HEADER}\n");
        for j in 0..300 {
            let id = format!("f{k}-{j}");
            let minor = (k * 1000 + j) as i64 + 1;
            text.push_str(&format!(
                "{id},acc-f,{}.{:02},USD,inflow,file {k},2025-03-{:02}\n",
                minor / 100,
                minor % 100,
                1 + (j % 28)
            ));
            file_ids.insert(id);
            file_total += minor;
            file_good += 1;
        }
        text.push_str(&format!("fbad{k},acc-f,1.0.0,USD,inflow,bad,2025-03-01\n"));
        drop_file(&inbox, &format!("f{k}.csv"), &text);
    };

    let mut seed = 12345u64;
    let mut files = 0usize;
    for round in 0..5 {
        let mut service = Service::start(&data, &config, &[]);
        service.wait_for_log("consuming NATS JetStream");
        drop_next(files);
        files += 1;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = 300 + (seed >> 33) % 1700;
        std::thread::sleep(Duration::from_millis(wait));
        eprintln!("round {round}: kill -9 after {wait} ms");
        service.kill9();
    }
    publisher.join().unwrap();
    drop_next(files);
    files += 1;

    // Final restart and drain.
    let expected = (feed.good.len() + file_good) as i64;
    let service = Service::start(&data, &config, &[]);
    wait_for("every record", Duration::from_secs(180), || {
        count(&data, "SELECT COUNT(*) AS n FROM transactions") >= expected
    });
    wait_for("the consumer to drain", Duration::from_secs(60), || {
        rt.block_on(consumer_backlog(&js, STREAM, "orders")) == Some((0, 0))
    });
    wait_for("the inbox to empty", Duration::from_secs(60), || {
        std::fs::read_dir(&inbox).unwrap().count() == 0
    });
    service.stop();

    let s = query(
        &data,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT transaction_id) AS d, SUM(amount_minor) AS total FROM transactions",
    );
    assert_eq!(int(&s[0], "n"), expected, "every record once");
    assert_eq!(int(&s[0], "d"), expected);
    assert_eq!(int(&s[0], "total"), feed.total_minor + file_total);
    let ids: BTreeSet<String> = query(&data, "SELECT transaction_id FROM transactions")
        .iter()
        .map(|r| text(r, "transaction_id").to_string())
        .collect();
    let mut want = feed.good.clone();
    want.extend(file_ids);
    assert!(ids == want, "exactly the generated set");
    let q = query(
        &data,
        "SELECT source, COUNT(*) AS n, COUNT(DISTINCT COALESCE(file, '') || ':' || CAST(line AS VARCHAR)) AS d FROM quarantine GROUP BY source ORDER BY source",
    );
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(
        int(&q[0], "n"),
        files as i64,
        "inbox rejects once each: {q:?}"
    );
    assert_eq!(
        int(&q[1], "n"),
        feed.bad as i64,
        "NATS rejects once each: {q:?}"
    );
    assert_eq!(int(&q[1], "d"), feed.bad as i64);
    assert_windows_match_batch(&data);
    assert_eq!(
        rt.block_on(consumer_backlog(&js, STREAM, "orders")),
        Some((0, 0)),
        "nothing pending on the durable consumer"
    );
}

#[test]
fn webhook_sink_failing_for_a_while_and_a_crash_before_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hook = Receiver::start(true);
    let config = write_config(
        tmp.path(),
        &format!(
            "[engine]\nmax_batch_delay = \"50ms\"\nwatermark_delay = \"0\"\nallowed_lateness = \"0\"\n\
             [inbox]\npoll_interval = \"100ms\"\n[forecast]\nrefresh_interval = \"0\"\n\
             [sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
            hook.url
        ),
    );
    let inbox = data.join("inbox");
    type Row = (String, String, String, String, i64, i64);
    let table_rows = |data: &Path| -> BTreeSet<Row> {
        query(
            data,
            "SELECT CAST(window_start AS VARCHAR) AS d, account_id, currency, COALESCE(category, '') AS category, net_minor, tx_count FROM cashflow_daily",
        )
        .iter()
        .map(|r| {
            (
                text(r, "d")[..10].to_string(),
                text(r, "account_id").to_string(),
                text(r, "currency").to_string(),
                text(r, "category").to_string(),
                int(r, "net_minor"),
                int(r, "tx_count"),
            )
        })
        .collect()
    };
    let received = |hook: &Receiver| -> BTreeSet<Row> {
        hook.rows()
            .into_iter()
            .filter(|((t, _, _), _)| t == "cashflow_daily")
            .map(|((_, start, _), row)| {
                (
                    start[..10].to_string(),
                    row["account_id"].as_str().unwrap_or("").to_string(),
                    row["currency"].as_str().unwrap_or("").to_string(),
                    row["category"].as_str().unwrap_or("").to_string(),
                    row["net_minor"].as_i64().unwrap(),
                    row["tx_count"].as_i64().unwrap(),
                )
            })
            .collect()
    };

    // 1. The receiver refuses (503) while the first emissions are made.
    let service = Service::start(&data, &config, &[]);
    let t = Instant::now();
    while !service.log().contains("watching inbox") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", service.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "a{i},acc-{},{}.00,USD,inflow,x,2025-04-{:02}",
                i % 3,
                i + 1,
                1 + i % 10
            )
        })
        .collect();
    drop_file(&inbox, "a.csv", &format!("{HEADER}\n{}\n", rows.join("\n")));
    wait_for("a.csv", Duration::from_secs(60), || {
        data.join("processed/a.csv").exists()
    });
    wait_for("refused deliveries", Duration::from_secs(30), || {
        hook.state.refused.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    assert!(received(&hook).is_empty());
    // 2. It recovers: every emission arrives, and the received state equals
    //    the window table.
    hook.state
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("the sink to catch up", Duration::from_secs(60), || {
        received(&hook) == table_rows(&data)
    });
    service.stop();

    // 3. A crash right after a window commit, before delivery (the receiver
    //    refuses meanwhile, so nothing is delivered before the crash).
    hook.state
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let delivered_before = hook
        .state
        .received
        .load(std::sync::atomic::Ordering::SeqCst);
    let mut service = Service::start(&data, &config, &[("FINOPSIA_CRASH_AT", "after_emission")]);
    let t = Instant::now();
    while !service.log().contains("watching inbox") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", service.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Late data for emitted days and a new day.
    drop_file(
        &inbox,
        "b.csv",
        &format!("{HEADER}\nb1,acc-0,100.00,USD,inflow,late,2025-04-02\nb2,acc-1,7.00,USD,outflow,new,2025-04-20\n"),
    );
    let t = Instant::now();
    while service.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no crash:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(service.log().contains("FINOPSIA_CRASH_AT=after_emission"));
    drop(service);
    // Committed to the window table, not delivered: it waits in the outbox.
    // (Readers do not see it yet either: the batch never completed, so the
    // published snapshot is still the previous one.)
    assert_eq!(
        hook.state
            .received
            .load(std::sync::atomic::Ordering::SeqCst),
        delivered_before,
        "nothing delivered while the receiver was down"
    );
    let waiting = std::fs::read_dir(data.join("state/outbox"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".arrow"))
        })
        .count();
    assert!(waiting >= 1, "the emission waits in the outbox");
    // 4. Restart: the outbox delivers it.
    hook.state
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let service = Service::start(&data, &config, &[]);
    wait_for("b.csv", Duration::from_secs(60), || {
        data.join("processed/b.csv").exists()
    });
    wait_for(
        "redelivery after the crash",
        Duration::from_secs(60),
        || received(&hook) == table_rows(&data),
    );
    service.stop();
    // The shutdown flush emitted the open window too, delivered before exit.
    assert_eq!(received(&hook), table_rows(&data));
    let day2: i64 = table_rows(&data)
        .into_iter()
        .filter(|r| r.0 == "2025-04-02" && r.1 == "acc-0")
        .map(|r| r.5)
        .sum();
    assert_eq!(day2, 2, "the late record is in its window");
    assert!(table_rows(&data).iter().any(|r| r.0 == "2025-04-20"));
}
