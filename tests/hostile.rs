//! Hostile input through `finopsia import` and `finopsia run`: the findings
//! of the hostile-input issue reproduced and shown fixed, a mix of hostile
//! records beside 100,000 good ones, and a batch whose window step fails
//! (an overflow) leaving `transactions` and `cashflow_daily` in agreement
//! with a truthful report (exit code, JSON summary, inbox `failed/` note).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date,posted_at,category,counterparty\n";

/// A good row: varied accounts, days, directions, categories.
fn good(i: usize) -> String {
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 12;
    let dir = if i.is_multiple_of(3) {
        "inflow"
    } else {
        "outflow"
    };
    let cat = ["Sales", "Rent", "Payroll", "Supplies"][i % 4];
    // Some descriptions quoted (with a comma and escaped quotes), not right
    // after a hostile record: an open quote there would close at this
    // row's quote (then `unparsable_line`, not `quoted_field_too_long`).
    let desc = if i % 50 == 25 {
        format!("\"Item {i}, \"\"ok\"\"\"")
    } else {
        format!("Item {i}")
    };
    format!(
        "g{i},acc-{},{}.{:02},USD,{dir},{desc},2024-{month:02}-{day:02},,{cat},\n",
        i % 5,
        (i * 37) % 5000,
        i % 100
    )
}

/// Hostile records, each one line, with the reason it must get.
fn hostile() -> Vec<(Vec<u8>, &'static str)> {
    let mut v: Vec<(Vec<u8>, &'static str)> = vec![
        (
            b"h1,acc-1,1.00,USD,outflow,x,0001-01-01,,,".to_vec(),
            "date_out_of_range",
        ),
        (
            b"h2,acc-1,1.00,USD,outflow,x,9999-12-31,,,".to_vec(),
            "date_out_of_range",
        ),
        (
            b"h3,acc-1,1.00,USD,outflow,x,2024-01-01,1000-01-01,,".to_vec(),
            "date_out_of_range",
        ),
        (
            b"h4,acc-1,92233720368547758.07,USD,inflow,x,2024-01-01,,,".to_vec(),
            "amount_out_of_range",
        ),
        (
            b"h5,acc-1,10000000000.01,USD,inflow,x,2024-01-01,,,".to_vec(),
            "amount_out_of_range",
        ),
        (
            b"h6,acc-1,1.00,USD,inflow,a\x00b,2024-01-01,,,".to_vec(),
            "nul_byte",
        ),
        (
            b"h7,acc-1,1.00,USD,inflow,caf\xe9,2024-01-01,,,".to_vec(),
            "invalid_utf8",
        ),
        (
            b"h8,acc-1,1.00,USD,inflow,\"x\"y,2024-01-01,,,".to_vec(),
            "unparsable_line",
        ),
        (
            b"h9,acc-1,1\"0,USD,inflow,x,2024-01-01,,,".to_vec(),
            "unparsable_line",
        ),
        (b"h10,acc-1,1.00,USD,inflow".to_vec(), "wrong_field_count"),
        (
            b"h11,acc-1,1.00,USD,sideways,x,2024-01-01,,,".to_vec(),
            "invalid_direction",
        ),
        (
            b"h12,acc-1,1e5,USD,inflow,x,2024-01-01,,,".to_vec(),
            "invalid_amount",
        ),
        (
            b"h13,acc-1,1.00,USD,inflow,\"Open quote,2024-01-01,,,".to_vec(),
            "quoted_field_too_long",
        ),
    ];
    let mut long_field = b"h14,acc-1,1.00,USD,inflow,".to_vec();
    long_field.extend(std::iter::repeat_n(b'y', 20_000));
    long_field.extend_from_slice(b",2024-01-01,,,");
    v.push((long_field, "field_too_long"));
    let mut huge = b"h15,acc-1,1.00,USD,inflow,".to_vec();
    huge.extend(std::iter::repeat_n(b'z', 3 << 20));
    huge.extend_from_slice(b",2024-01-01,,,");
    v.push((huge, "record_too_long"));
    v
}

#[test]
fn hostile_records_beside_100k_good_ones_cost_only_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let path = tmp.path().join("mixed.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(HEADER.as_bytes()).unwrap();
    // The first finding: an unterminated quote in the very first record.
    f.write_all(b"h0,acc-1,1.00,USD,outflow,\"Best Buy #12,2024-01-01\n")
        .unwrap();
    let bad = hostile();
    let mut want: BTreeMap<&str, i64> = BTreeMap::new();
    *want.entry("quoted_field_too_long").or_default() += 1;
    let n_good = 100_000;
    for i in 0..n_good {
        f.write_all(good(i).as_bytes()).unwrap();
        if i % 6_500 == 3 {
            let (raw, reason) = &bad[(i / 6_500) % bad.len()];
            f.write_all(raw).unwrap();
            f.write_all(b"\n").unwrap();
            *want.entry(reason).or_default() += 1;
        }
    }
    // And at the very end, without a final line break.
    f.write_all(b"hz,acc-1,1.00,USD,outflow,\"never closed")
        .unwrap();
    *want.entry("unterminated_quote").or_default() += 1;
    drop(f);
    assert_eq!(
        want.values().sum::<i64>(),
        2 + (n_good as i64 - 4) / 6_500 + 1,
        "the mix is what the test thinks it is"
    );
    for (_, reason) in &bad {
        assert!(
            want.contains_key(reason),
            "{reason} is in the mix: {want:?}"
        );
    }

    let report = import(&data, &[path.to_str().unwrap()]);
    assert_eq!(report["accepted"].as_i64(), Some(n_good as i64), "{report}");
    assert_eq!(
        report["quarantined"].as_i64(),
        Some(want.values().sum::<i64>()),
        "{report}"
    );
    assert_eq!(report["complete"].as_bool(), Some(true), "{report}");
    let q = query(
        &data,
        "SELECT reason, COUNT(*) AS n, MAX(length(raw)) AS longest FROM quarantine GROUP BY reason ORDER BY reason",
    );
    let got: BTreeMap<&str, i64> = q.iter().map(|r| (text(r, "reason"), int(r, "n"))).collect();
    assert_eq!(got, want);
    for r in &q {
        assert!(
            int(r, "longest") <= 65_536,
            "quarantine keeps at most max_record_bytes: {r:?}"
        );
    }
    let ids = query(
        &data,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT transaction_id) AS d, SUM(CASE WHEN transaction_id LIKE 'g%' THEN 1 ELSE 0 END) AS g FROM transactions",
    );
    assert_eq!(int(&ids[0], "n"), n_good as i64);
    assert_eq!(int(&ids[0], "d"), n_good as i64);
    assert_eq!(int(&ids[0], "g"), n_good as i64, "exactly the good ones");
    let first = query(
        &data,
        "SELECT line, CAST(raw_bytes AS VARCHAR) AS raw FROM quarantine WHERE reason = 'quoted_field_too_long' ORDER BY line LIMIT 1",
    );
    assert_eq!(int(&first[0], "line"), 2);
    assert_eq!(
        text(&first[0], "raw"),
        "h0,acc-1,1.00,USD,outflow,\"Best Buy #12,2024-01-01"
    );
    assert_windows_match_batch(&data);
}

fn overflow_config(dir: &Path) -> std::path::PathBuf {
    // One record per micro-batch and no amount headroom: the second record
    // at i64::MAX in one window overflows cashflow_daily's sums.
    let path = dir.join("overflow.toml");
    std::fs::write(
        &path,
        "[engine]\nbatch_rows = 1\n\n[limits]\nmax_amount_minor = 9223372036854775807\n\n[inbox]\npoll_interval = \"100ms\"\n",
    )
    .unwrap();
    path
}

const OVERFLOW: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date,category\n\
o1,acc,92233720368547758.07,USD,inflow,Huge,2024-02-01,Sales\n\
o2,acc,92233720368547758.07,USD,inflow,Huge again,2024-02-01,Sales\n";

#[test]
fn a_window_overflow_stores_nothing_of_its_batch_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = overflow_config(tmp.path());
    let input = tmp.path().join("overflow.csv");
    std::fs::write(&input, OVERFLOW).unwrap();
    let out = finopsia(&[
        "--config",
        cfg.to_str().unwrap(),
        "import",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "cashflow_daily",
        "2024-02-01",
        "overflows",
        "nothing of this batch was stored",
        "accepted 1",
    ] {
        assert!(stderr.contains(want), "stderr lacks {want:?}: {stderr}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(report["accepted"].as_i64(), Some(1), "{report}");
    assert_eq!(report["complete"].as_bool(), Some(false), "{report}");
    assert!(report["error"].as_str().unwrap().contains("overflows"));
    let n = query(&data, "SELECT transaction_id FROM transactions");
    assert_eq!(n.len(), 1);
    assert_eq!(text(&n[0], "transaction_id"), "o1");
    assert_windows_match_batch(&data);
    // Again: the stored record is a duplicate, the other fails the same way.
    let out = finopsia(&[
        "--config",
        cfg.to_str().unwrap(),
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 1);
    assert_windows_match_batch(&data);
}

#[test]
fn the_inbox_note_says_what_of_a_failed_file_was_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = overflow_config(tmp.path());
    let service = Service::start(
        tmp.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let inbox = data.join("inbox");
    std::fs::write(inbox.join(".o.tmp"), OVERFLOW).unwrap();
    std::fs::rename(inbox.join(".o.tmp"), inbox.join("o.csv")).unwrap();
    let note = data.join("failed/o.csv.error.txt");
    service.wait("the failed file", &|| note.is_file());
    let text_note = std::fs::read_to_string(&note).unwrap();
    for want in [
        "cashflow_daily",
        "overflows",
        "accepted 1, quarantined 0, duplicates 0",
        "1 of 2 micro-batches committed",
    ] {
        assert!(text_note.contains(want), "note lacks {want:?}: {text_note}");
    }
    assert!(data.join("failed/o.csv").is_file());
    drop(service);
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 1);
    // The committed record's window was flushed at the end of its file.
    assert_windows_match_batch(&data);
}

/// `finopsia run` for a test: its log in a file, waited on until it watches
/// its inbox, killed (and reaped) when dropped, also when the test fails.
struct Service {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Service {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Service {
        let log = dir.join("run.log");
        let child = finopsia_command()
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let service = Service { child, log };
        service.wait("the inbox", &|| {
            std::fs::read_to_string(&service.log)
                .unwrap_or_default()
                .contains("watching inbox")
        });
        service
    }

    fn wait(&self, what: &str, cond: &dyn Fn() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const THREE: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date\n\
s1,acc,1.00,USD,inflow,a,2024-03-01\n\
s2,acc,2.00,USD,inflow,b,2024-03-01\n\
s3,acc,4.00,USD,inflow,c,2024-03-02\n";

/// A failure after a batch's records are committed (injected before its
/// checkpoint, as a full disk would fail it): the report says the records
/// are stored, and the window tables catch up on the next start.
#[test]
fn a_failure_after_the_commit_says_the_records_are_stored_and_windows_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("three.csv");
    std::fs::write(&input, THREE).unwrap();
    let out = finopsia_command()
        .args([
            "import",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
        .env("FINOPSIA__ENGINE__BATCH_ROWS", "1")
        .env("FINOPSIA_FAIL_AT", "before_checkpoint")
        .env("FINOPSIA_FAIL_AFTER", "2")
        // The batch's own step and the flush after it.
        .env("FINOPSIA_FAIL_COUNT", "2")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the batch's records are stored") && stderr.contains("accepted 2"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted"].as_i64(), Some(2), "{report}");
    assert_eq!(report["complete"].as_bool(), Some(false));
    // Readers keep the last published snapshot (batch 1), in which
    // transactions and the window tables agree; batch 2 is stored but not
    // published until the engine has caught up.
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 1);
    // The next start recomputes them; the rest of the file goes in.
    let again = import(&data, &[input.to_str().unwrap()]);
    assert_eq!(again["accepted"].as_i64(), Some(1), "{again}");
    assert_eq!(
        again["duplicates"].as_i64(),
        Some(2),
        "s2 was stored: {again}"
    );
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 3);
    assert_windows_match_batch(&data);
}

#[test]
fn a_failure_after_the_commit_in_the_service_moves_the_file_to_processed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let service = Service::start(
        tmp.path(),
        &["run", "--data-dir", data.to_str().unwrap()],
        &[
            ("FINOPSIA__ENGINE__BATCH_ROWS", "1"),
            ("FINOPSIA__INBOX__POLL_INTERVAL", "100ms"),
            ("FINOPSIA_FAIL_AT", "before_checkpoint"),
            ("FINOPSIA_FAIL_AFTER", "2"),
        ],
    );
    let inbox = data.join("inbox");
    std::fs::write(inbox.join(".t.tmp"), THREE).unwrap();
    std::fs::rename(inbox.join(".t.tmp"), inbox.join("three.csv")).unwrap();
    service.wait("the processed file", &|| {
        data.join("processed/three.csv").is_file()
    });
    assert!(!data.join("failed/three.csv").exists());
    let logged = std::fs::read_to_string(&service.log).unwrap();
    assert!(
        logged.contains("injected failure at before_checkpoint"),
        "the failure happened: {logged}"
    );
    drop(service);
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions"), 3);
    assert_windows_match_batch(&data);
}
