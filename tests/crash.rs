//! Crash safety: `kill -9` during an import, then the same import again,
//! leaves every record exactly once, and the window table still equals a
//! batch GROUP BY over transactions.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Writes `rows` valid rows (and a bad row every 1000) and returns their exact total.
fn write_big_csv(path: &Path, rows: usize) -> i64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        f,
        "transaction_id,account_id,amount,currency,direction,description,transaction_date"
    )
    .unwrap();
    let mut total = 0i64;
    for i in 0..rows {
        let minor = (i as i64 * 7919) % 100_000 + 1;
        let inflow = i % 3 == 0;
        total += if inflow { minor } else { -minor };
        let day = 1 + (i * 28 / rows);
        writeln!(
            f,
            "c{i},acc-{},{}.{:02},USD,{},row {i},2024-02-{day:02}T{:02}:00:00Z",
            i % 4,
            minor / 100,
            minor % 100,
            if inflow { "inflow" } else { "outflow" },
            i % 24
        )
        .unwrap();
        if i % 1000 == 0 {
            writeln!(f, "bad{i},acc,1.001,USD,inflow,x,2024-02-01").unwrap();
        }
    }
    total
}

/// `finopsia import` of `input` into `data` in 5,000-row micro-batches.
fn import_command(data: &Path, input: &Path) -> Command {
    let mut cmd = finopsia_command();
    cmd.args([
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        input.to_str().unwrap(),
    ])
    .env("FINOPSIA__ENGINE__BATCH_ROWS", "5000");
    cmd
}

fn commits(data: &Path) -> usize {
    std::fs::read_dir(data.join("tables/transactions/_delta_log"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn kill_during_import_then_rerun_keeps_every_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("big.csv");
    let rows = 120_000;
    let total = write_big_csv(&input, rows);

    // Kill at several points: after 2, 4 and 6 transaction commits.
    for kill_after in [2usize, 4, 6] {
        let mut child = import_command(&data, &input)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = commits(&data);
        let deadline = Instant::now() + Duration::from_secs(120);
        while commits(&data) < base + kill_after && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    check_rerun_is_exactly_once(&data, &input, rows, total, true);
}

fn check_rerun_is_exactly_once(
    data: &Path,
    input: &Path,
    rows: usize,
    total: i64,
    interrupted: bool,
) {
    let data = data.to_path_buf();
    let stored = query(&data, "SELECT COUNT(*) AS n FROM transactions");
    if interrupted {
        assert!(
            int(&stored[0], "n") > 0,
            "the crash came after some commits"
        );
        assert!(
            int(&stored[0], "n") < rows as i64,
            "the first import was interrupted"
        );
    }

    let r = import(&data, &["--source", "import", input.to_str().unwrap()]);
    assert_eq!(
        r["accepted"].as_i64().unwrap() + r["duplicates"].as_i64().unwrap(),
        rows as i64,
        "{r}"
    );
    let s = query(&data, "SELECT COUNT(*) AS n, COUNT(DISTINCT transaction_id) AS d, SUM(amount_minor) AS total FROM transactions");
    assert_eq!(int(&s[0], "n"), rows as i64);
    assert_eq!(int(&s[0], "d"), rows as i64);
    assert_eq!(int(&s[0], "total"), total);
    assert_windows_match_batch(&data);
}

/// Aborts at each commit boundary of a micro-batch (fault injection), then
/// re-runs the import: nothing lost, nothing doubled, quarantine unique.
#[test]
fn abort_at_each_commit_boundary_then_rerun() {
    for point in [
        "after_quarantine",
        "after_transactions",
        "after_checkpoint",
        "after_emission",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let input = tmp.path().join("big.csv");
        let rows = 30_000;
        let total = write_big_csv(&input, rows);
        let out = import_command(&data, &input)
            .env("FINOPSIA__ENGINE__ALLOWED_LATENESS", "0")
            .env("FINOPSIA_CRASH_AT", point)
            .env("FINOPSIA_CRASH_AFTER", "3")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the import should have aborted"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(point));
        check_rerun_is_exactly_once(&data, &input, rows, total, true);
        let q = query(
            &data,
            "SELECT COUNT(*) AS n, COUNT(DISTINCT line) AS d FROM quarantine",
        );
        assert_eq!(int(&q[0], "n"), (rows as i64 + 999) / 1000, "{point}");
        assert_eq!(
            int(&q[0], "d"),
            int(&q[0], "n"),
            "{point}: no quarantine row twice"
        );
    }
}

/// A crash right after a window emission committed (before the checkpoint
/// says so): on restart the engine must know those windows are in the table,
/// so a late record for one of them is merged with the stored window rather
/// than replacing it.
#[test]
fn late_record_after_a_crash_that_followed_a_committed_emission() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let header = "transaction_id,account_id,amount,currency,direction,description,transaction_date";
    let file = |name: &str, rows: &[&str]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        p
    };
    let run = |input: &Path, crash: bool| {
        let mut cmd = import_command(&data, input);
        cmd.env("FINOPSIA__ENGINE__ALLOWED_LATENESS", "0")
            .env("FINOPSIA__ENGINE__WATERMARK_DELAY", "0")
            .env("RUST_LOG", "warn");
        if crash {
            cmd.env("FINOPSIA_CRASH_AT", "after_emission")
                .env("FINOPSIA_CRASH_AFTER", "1");
        }
        cmd.output().unwrap()
    };
    // 1. An earlier window, emitted normally (so the table has emitted before).
    let a = file("a.csv", &["a1,acc,1.00,USD,inflow,x,2024-01-01T10:00:00Z"]);
    assert!(run(&a, false).status.success());
    // 2. The 10th's window is emitted by the watermark (the 20th) and the
    //    process dies right after that commit.
    let b = file(
        "b.csv",
        &[
            "b1,acc,2.00,USD,inflow,x,2024-01-10T10:00:00Z",
            "b2,acc,3.00,USD,inflow,x,2024-01-20T10:00:00Z",
        ],
    );
    let out = run(&b, true);
    assert!(!out.status.success(), "the import should have aborted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("after_emission"));
    // 3. A late record for the 10th, after the restart.
    let c = file("c.csv", &["c1,acc,0.50,USD,inflow,x,2024-01-10T12:00:00Z"]);
    let out = run(&c, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let day = query(
        &data,
        "SELECT inflow_minor, tx_count FROM cashflow_daily WHERE window_start = TIMESTAMP '2024-01-10T00:00:00Z'",
    );
    assert_eq!(day.len(), 1, "{day:?}");
    assert_eq!(int(&day[0], "inflow_minor"), 250, "{day:?}");
    assert_eq!(int(&day[0], "tx_count"), 2, "{day:?}");
    assert_windows_match_batch(&data);
}
