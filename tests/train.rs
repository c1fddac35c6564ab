//! Categorization end to end: the bundled model fills missing categories,
//! `finopsia correct` stores corrections, `finopsia train` (Python catboost)
//! trains on input labels + corrections and registers a new version, and the
//! *running* service uses it for the next inbox file without a restart; a
//! later `finopsia import` uses it too.
//!
//! Needs a Python with catboost: `FINOPSIA_TEST_PYTHON` (set by tests/run.sh).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn python() -> String {
    std::env::var("FINOPSIA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FINOPSIA_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs Python catboost into target/pyenv")
    })
}

fn start(data: &Path) -> Child {
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    finopsia_command()
        .args(["run", "--sample", "--data-dir", data.to_str().unwrap()])
        .env("FINOPSIA__INBOX__POLL_INTERVAL", "100ms")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn drop_file(inbox: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(inbox).unwrap();
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date";

fn unlabelled(prefix: &str) -> String {
    format!(
        "{HEADER}\n{prefix}1,1,250000,NGN,outflow,Office Rent Payment,2025-06-01\n\
         {prefix}2,2,90000.50,NGN,inflow,Product Sale,2025-06-02\n\
         {prefix}3,3,45000,NGN,outflow,Team offsite travel 2025,2025-06-03\n"
    )
}

fn rows_of(data: &Path, prefix: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    query(
        data,
        &format!(
            "SELECT transaction_id, category, category_source, model_version, category_confidence, needs_review \
             FROM transactions WHERE transaction_id LIKE '{prefix}%' ORDER BY transaction_id"
        ),
    )
}

#[test]
fn train_then_hot_swap_in_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inbox = data.join("inbox");
    let processed = data.join("processed");
    let mut service = start(&data);
    let count = |data: &Path| count(data, "SELECT COUNT(*) AS n FROM transactions");
    wait_for("the sample", Duration::from_secs(120), || {
        count(&data) >= 3000
    });

    // 1. The bundled model fills missing categories.
    drop_file(&inbox, "a.csv", &unlabelled("a"));
    wait_for("a.csv", Duration::from_secs(60), || {
        processed.join("a.csv").exists()
    });
    let a = rows_of(&data, "a");
    assert_eq!(a.len(), 3, "{a:?}");
    let bundled = text(&a[0], "model_version").to_string();
    assert!(bundled.starts_with("default-"), "{a:?}");
    assert_eq!(text(&a[0], "category"), "Rent", "{a:?}");
    assert_eq!(text(&a[1], "category"), "Revenue", "{a:?}");
    for r in &a {
        assert_eq!(text(r, "category_source"), "model");
        let c = r["category_confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0);
        assert_eq!(r["needs_review"].as_bool().unwrap(), c < 0.6, "{r:?}");
    }
    // Input categories are kept as they are.
    let sample = query(
        &data,
        "SELECT COUNT(*) AS n FROM transactions WHERE source = 'sample' AND category_source = 'input' AND model_version IS NULL AND NOT needs_review",
    );
    assert_eq!(int(&sample[0], "n"), 3000);

    // 2. A correction, visible in SQL. `correct` writes the store, so it is
    //    refused while the service holds the data directory...
    let refused = finopsia(&[
        "correct",
        "--data-dir",
        data.to_str().unwrap(),
        "--source",
        "inbox",
        "--transaction-id",
        "a3",
        "--category",
        "Travel",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is being written by"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // ...and goes through once it is stopped; the service then starts again.
    unsafe {
        libc::kill(service.id() as i32, libc::SIGTERM);
    }
    assert!(service.wait().unwrap().success());
    let out = ok(&[
        "correct",
        "--data-dir",
        data.to_str().unwrap(),
        "--source",
        "inbox",
        "--transaction-id",
        "a3",
        "--category",
        "Travel",
    ]);
    assert!(out.contains("-> Travel"), "{out}");
    let c = query(
        &data,
        "SELECT source, transaction_id, category FROM corrections",
    );
    assert_eq!(c.len(), 1);
    assert_eq!(text(&c[0], "category"), "Travel");
    let bad = finopsia(&[
        "correct",
        "--data-dir",
        data.to_str().unwrap(),
        "--source",
        "inbox",
        "--transaction-id",
        "nope",
        "--category",
        "Travel",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no transaction"));
    let log = data.with_extension("log");
    let mut service = start(&data);
    wait_for("the service again", Duration::from_secs(120), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watching inbox")
    });

    // 3. Train (input labels + the correction) and register, beside the
    //    running service (training only reads the store).
    let out = ok(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--python",
        &python(),
        "--iterations",
        "40",
        "--quick",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let version = report["version"].as_str().unwrap().to_string();
    assert!(version.starts_with("cb-"), "{report}");
    assert_eq!(report["rows"].as_u64(), Some(3001), "{report}");
    assert!(report["registered"].as_bool().unwrap());
    assert!(
        report["holdout_accuracy"].as_f64().unwrap() > 0.9,
        "{report}"
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("models").join(&version).join("metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["training"]["label_sources"]["correction"], 1, "{meta}");
    assert!(meta["classes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "Travel"));
    assert!(meta["training"]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let list = ok(&["model", "list", "--data-dir", data.to_str().unwrap()]);
    assert!(list.contains(&format!("* {version}")), "{list}");

    // 4. The running service picks the new version up for its next file.
    assert!(service.try_wait().unwrap().is_none(), "service exited");
    drop_file(&inbox, "b.csv", &unlabelled("b"));
    wait_for("b.csv", Duration::from_secs(60), || {
        processed.join("b.csv").exists()
    });
    let b = rows_of(&data, "b");
    assert_eq!(b.len(), 3, "{b:?}");
    for r in &b {
        assert_eq!(text(r, "model_version"), version, "{b:?}");
    }
    // (A 40-tree model is too weak to assert its categories; the version is the point.)
    // Rows categorized earlier keep the version that categorized them.
    assert_eq!(text(&rows_of(&data, "a")[0], "model_version"), bundled);
    assert!(service.try_wait().unwrap().is_none(), "service restarted");
    unsafe {
        libc::kill(service.id() as i32, libc::SIGTERM);
    }
    assert!(service.wait().unwrap().success());

    // 5. A new process (import) uses the registered version as well.
    let file = dir.path().join("c.csv");
    std::fs::write(&file, unlabelled("c")).unwrap();
    import(&data, &["--source", "inbox", file.to_str().unwrap()]);
    let c = rows_of(&data, "c");
    assert_eq!(c.len(), 3);
    assert_eq!(text(&c[0], "model_version"), version);
}

#[test]
fn training_on_too_little_data_fails_clearly_and_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("few.csv");
    std::fs::write(
        &file,
        format!(
            "{HEADER},category\nf1,1,10,NGN,outflow,Rent,2025-01-01,Rent\n\
             f2,1,20,NGN,inflow,Sale,2025-01-02,Revenue\n"
        ),
    )
    .unwrap();
    import(&data, &[file.to_str().unwrap()]);
    let out = finopsia(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--python",
        &python(),
        "--quick",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only 2 labelled rows"), "{err}");
    assert!(err.contains("no model was registered"), "{err}");
    assert!(!data.join("models/CURRENT").exists());
    // A Python without catboost (or none at all) is a clear error too.
    let out = finopsia(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--python",
        "/nonexistent/python3",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot run /nonexistent/python3"), "{err}");
}

/// The `categorizer_retrain` job: nothing to do without enough new
/// corrections; with them, a model is trained (Python catboost) and
/// registered; the corrections it learned from no longer count.
#[test]
fn retrain_job_trains_only_after_enough_new_corrections() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csv = tmp.path().join("a.csv");
    std::fs::write(&csv, unlabelled("r")).unwrap();
    import(&data, &["--source", "inbox", csv.to_str().unwrap()]);
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipeline/core/data/finopsia-seed-transactions.csv"
    );
    import(
        &data,
        &["--preset", "finopsia-seed", "--source", "seed", sample],
    );
    let cfg = common::service::write_config(
        tmp.path(),
        &format!(
            "[train]\npython = \"{}\"\niterations = 20\nretrain_after_corrections = 2\n",
            python()
        ),
    );
    let run = || {
        job_run(&cfg, &data, "categorizer_retrain");
        let runs = job_history(&data, Some("categorizer_retrain"));
        assert_eq!(runs[0]["outcome"], "ok", "{runs:?}");
        runs[0]["detail"].as_str().unwrap().to_string()
    };
    let current = || std::fs::read_to_string(data.join("models/CURRENT")).ok();
    let correct = |id: &str, category: &str| {
        ok(&[
            "correct",
            "--data-dir",
            data.to_str().unwrap(),
            "--source",
            "inbox",
            "--transaction-id",
            id,
            "--category",
            category,
        ]);
    };
    correct("r1", "Rent");
    let detail = run();
    assert!(
        detail.contains("1 new corrections since the model in use, fewer than 2"),
        "{detail}"
    );
    assert_eq!(current(), None, "nothing registered");
    correct("r3", "Travel");
    let detail = run();
    assert!(detail.contains("2 new corrections: model cb-"), "{detail}");
    let version = current().expect("a model is registered");
    assert!(detail.contains(version.trim()), "{detail} / {version}");
    // Those corrections are older than the new model now.
    let detail = run();
    assert!(detail.contains("0 new corrections"), "{detail}");
    assert_eq!(current(), Some(version));
}
