//! The `store_maintenance` job: compaction leaves every table's rows as they
//! were with fewer files, and vacuum deletes the files compacted away;
//! beside a running service that keeps ingesting, its window tables are
//! compacted by the writer between micro-batches and nothing is lost or
//! counted twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::service::*;
use common::*;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/pipeline/core/data/finopsia-seed-transactions.csv"
);

/// `finopsia status --tables --json`: table → (version, data files).
fn tables(data: &Path) -> BTreeMap<String, (u64, u64)> {
    let out = finopsia(&[
        "status",
        "--tables",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["tables"]
        .as_object()
        .expect("tables")
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                (t["version"].as_u64().unwrap(), t["files"].as_u64().unwrap()),
            )
        })
        .collect()
}

/// Every row of `table` as CSV lines, sorted (compaction may reorder rows).
fn rows(data: &Path, table: &str) -> Vec<String> {
    let out = ok(&[
        "query",
        "--format",
        "csv",
        "--data-dir",
        data.to_str().unwrap(),
        &format!("SELECT * FROM \"{table}\""),
    ]);
    let mut lines: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

/// Parquet files on disk under a table's directory.
fn parquet_on_disk(data: &Path, table: &str) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|f| f != "_delta_log") {
                    walk(&p, n);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&data.join("tables").join(table), &mut n);
    n
}

fn history(data: &Path) -> Vec<serde_json::Value> {
    job_history(data, Some("store_maintenance"))
}

#[test]
fn compaction_keeps_every_table_with_fewer_files_and_vacuum_deletes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Small micro-batches: many small files in every table.
    let out = finopsia_command()
        .args([
            "import",
            "--json",
            "--preset",
            "finopsia-seed",
            "--source",
            "seed",
            "--data-dir",
            data.to_str().unwrap(),
            SAMPLE,
        ])
        .env("FINOPSIA__ENGINE__BATCH_ROWS", "250")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A second source with rejects, so quarantine has several files too.
    for n in 0..3 {
        let f = tmp.path().join(format!("bad{n}.csv"));
        std::fs::write(
            &f,
            format!(
                "transaction_id,account_id,description,category,amount,direction,transaction_date,posted_at\n\
                 b{n},1,Oops,Office,12x,outflow,1/2/2020 0:00,1/2/2020 0:00\n\
                 g{n},1,Paper,Office,1{n}5,outflow,1/3/2020 0:00,1/3/2020 0:00\n"
            ),
        )
        .unwrap();
        import(
            &data,
            &[
                "--preset",
                "finopsia-seed",
                "--source",
                "extra",
                f.to_str().unwrap(),
            ],
        );
    }

    let before = tables(&data);
    for t in ["transactions", "quarantine", "cashflow_daily"] {
        assert!(
            before[t].1 >= 3,
            "{t} should start with many files: {before:?}"
        );
    }
    let contents: BTreeMap<String, Vec<String>> =
        before.keys().map(|t| (t.clone(), rows(&data, t))).collect();
    let disk_before = parquet_on_disk(&data, "transactions");

    let cfg = write_config(tmp.path(), "[maintenance]\nvacuum_retain = \"0\"\n");
    job_run(&cfg, &data, "store_maintenance");

    let after = tables(&data);
    for (t, (_, files)) in &before {
        let (_, files_after) = after[t];
        if t == "job_runs" {
            continue; // the run itself appended to it
        }
        assert_eq!(
            rows(&data, t),
            contents[t],
            "{t}: compaction changed the rows"
        );
        if *files > 1 {
            assert!(
                files_after < *files,
                "{t}: {files} files before, {files_after} after"
            );
        }
    }
    assert_eq!(after["transactions"].1, 1, "{after:?}");
    // Vacuum (retention 0) deleted every file the table no longer reads.
    let disk_after = parquet_on_disk(&data, "transactions");
    assert!(disk_before > disk_after, "{disk_before} → {disk_after}");
    assert_eq!(disk_after as u64, after["transactions"].1);
    assert_windows_match_batch(&data);

    let runs = history(&data);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "ok", "{runs:?}");
    let detail = runs[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("transactions {}→1", before["transactions"].1)),
        "{detail}"
    );

    // A second run finds nothing to do, and says so.
    job_run(&cfg, &data, "store_maintenance");
    // A second run has only the job's own history to compact.
    let runs = history(&data);
    let detail = runs[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 compacted")
            && detail.contains("job_runs ")
            && !detail.contains("transactions"),
        "{runs:?}"
    );
}

#[test]
fn compaction_beside_a_running_service_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let cfg = write_config(
        tmp.path(),
        "[inbox]\npreset = \"finopsia-seed\"\n\
         [engine]\nbatch_rows = 100\n\
         [maintenance]\nvacuum_retain = \"0\"\n\
         [jobs.forecast_refresh]\nenabled = false\n",
    );
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let parts: Vec<String> = lines
        .chunks(lines.len().div_ceil(12))
        .map(|c| format!("{header}\n{}\n", c.join("\n")))
        .collect();
    let drop_and_wait = |n: usize| {
        drop_file(&inbox, &format!("p{n:02}.csv"), &parts[n]);
        wait_for(&format!("p{n:02}.csv"), Duration::from_secs(60), || {
            data.join(format!("processed/p{n:02}.csv")).exists()
        });
    };
    let env = [("RUST_LOG", "finopsia=info,finopsia_engine=info,warn")];
    let mut service = Service::start(&data, &cfg, &env);
    service.wait_for_log("watching inbox");
    for n in 0..6 {
        drop_and_wait(n);
    }
    let before = tables(&data);
    assert!(before["transactions"].1 >= 6, "{before:?}");

    // The job runs in the service while the rest of the files stream in.
    let job = {
        let data = data.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || job_run(&cfg, &data, "store_maintenance"))
    };
    for (n, part) in parts.iter().enumerate().skip(6) {
        drop_file(&inbox, &format!("p{n:02}.csv"), part);
        std::thread::sleep(Duration::from_millis(100));
    }
    let job_out = job.join().unwrap();
    for n in 6..parts.len() {
        wait_for(&format!("p{n:02}.csv"), Duration::from_secs(60), || {
            data.join(format!("processed/p{n:02}.csv")).exists()
        });
    }
    assert!(
        service
            .log()
            .contains("window tables compacted between micro-batches"),
        "the writer compacted its window tables:\n{}",
        service.log()
    );
    service.stop();

    let runs = history(&data);
    assert_eq!(runs[0]["outcome"], "ok", "{runs:?}\n{job_out}");
    assert_eq!(runs[0]["trigger"], "manual", "{runs:?}");
    let detail = runs[0]["detail"].as_str().unwrap();
    assert!(detail.contains("transactions "), "{detail}");
    assert!(detail.contains("cashflow_daily "), "{detail}");

    // Every record once, windows equal to a batch aggregation, every table
    // readable after vacuum.
    assert_eq!(
        count(&data, "SELECT COUNT(*) AS n FROM transactions"),
        lines.len() as i64
    );
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT transaction_id FROM transactions)"
        ),
        lines.len() as i64
    );
    assert_windows_match_batch(&data);
    for t in tables(&data).keys() {
        rows(&data, t);
    }
}
