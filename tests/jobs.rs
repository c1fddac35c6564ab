//! The scheduler in `finopsia run`: the forecast refresh as a job with its
//! history in `job_runs`; a run cut off by SIGKILL is recorded as
//! interrupted at the next start; a scheduled run missed while the service
//! was down runs once; `finopsia job run` goes to the running service, or
//! runs in-process when none runs. (Retries, timeouts, overlapping triggers
//! and the missed-run policies under a paused clock are unit tests in
//! `pipeline/ops/src/scheduler.rs`.)

mod common;

use std::time::Duration;

use common::service::*;
use common::*;

fn history(data: &std::path::Path) -> Vec<serde_json::Value> {
    let mut runs = job_history(data, None);
    runs.reverse(); // oldest first
    runs
}

fn run_refresh(data: &std::path::Path) -> std::process::Output {
    finopsia(&[
        "job",
        "run",
        "forecast_refresh",
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

fn outcomes(runs: &[serde_json::Value]) -> Vec<(String, String)> {
    runs.iter()
        .map(|r| {
            (
                r["trigger"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn job_runs_survive_kill9_missed_runs_and_manual_triggers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = write_config(
        tmp.path(),
        "[jobs.forecast_refresh]\nevery = \"4s\"\nmissed = \"run_once\"\n",
    );
    let env = [(
        "RUST_LOG",
        "finopsia=info,finopsia_ops=info,finopsia_engine=info,warn",
    )];
    // The first refresh of the sample fits every series: kill it midway.
    let mut service = Service::start_with_args(&data, &cfg, &env, &["--sample"]);
    service.wait_for_log("job started");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !service.log().contains("job finished"),
        "the first refresh ended before the kill; the test needs a longer one"
    );
    service.kill9();
    let runs = history(&data);
    assert_eq!(
        outcomes(&runs),
        [("start".to_string(), "running".to_string())],
        "the start row is committed before the job runs"
    );
    let killed = runs[0]["run_id"].as_str().unwrap().to_string();

    // Restart: the cut-off run is recorded as interrupted, the job runs
    // again, and then on its schedule.
    let mut service = Service::start(&data, &cfg, &env);
    service.wait_for_log("job finished");
    wait_for("two scheduled runs", Duration::from_secs(90), || {
        history(&data)
            .iter()
            .filter(|r| r["trigger"] == "schedule" && r["outcome"] == "ok")
            .count()
            >= 2
    });
    let runs = history(&data);
    let first = runs
        .iter()
        .find(|r| r["run_id"] == killed.as_str())
        .unwrap();
    assert_eq!(first["outcome"], "interrupted", "{runs:?}");
    assert!(first["error"].as_str().unwrap().contains("stopped"));
    assert_eq!(
        outcomes(&runs)[1],
        ("start".into(), "ok".into()),
        "{runs:?}"
    );
    let scheduled: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .filter(|r| r["trigger"] == "schedule")
        .map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap())
        .collect();
    for w in scheduled.windows(2) {
        assert!(
            (w[1] - w[0]).num_milliseconds() >= 4000,
            "every 4s: {scheduled:?}"
        );
    }

    // A manual run through the running service.
    let out = run_refresh(&data);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("forecast_refresh: ok"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("asked the running service"));
    assert!(history(&data)
        .iter()
        .any(|r| r["trigger"] == "manual" && r["outcome"] == "ok"));
    let bad = finopsia(&["job", "run", "nope", "--data-dir", data.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no enabled job \"nope\""));

    // Down for longer than the interval: the missed run runs once at start.
    service.stop();
    let before = history(&data).len();
    std::thread::sleep(Duration::from_secs(9));
    let mut service = Service::start(&data, &cfg, &env);
    service.wait_for_log("job finished");
    let runs = history(&data);
    let after: Vec<_> = outcomes(&runs[before..]);
    assert_eq!(after[0], ("missed".into(), "ok".into()), "{after:?}");
    assert_eq!(
        runs[before..]
            .iter()
            .filter(|r| r["trigger"] == "missed")
            .count(),
        1,
        "two missed intervals run once: {after:?}"
    );
    service.stop();

    // No service: the run happens in this process.
    let out = run_refresh(&data);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("asked the running service"));
    let list = ok(&[
        "job",
        "list",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let list: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(list[0]["name"], "forecast_refresh");
    assert_eq!(list[0]["schedule"], "every 4s");
    assert_eq!(list[0]["last_outcome"], "ok");
    // The history is a table like any other.
    assert!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM job_runs WHERE outcome = 'interrupted'"
        ) == 1
    );
}

#[test]
fn unknown_jobs_and_bad_schedules_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (body, want) in [
        ("[jobs.compactor]\n", "jobs.compactor: no such job"),
        (
            "[jobs.forecast_refresh]\nschedule = \"0 61 * * *\"\n",
            "jobs.forecast_refresh.schedule \"0 61 * * *\"",
        ),
        (
            "[jobs.forecast_refresh]\nschedule = \"0 2 * * *\"\ntimezone = \"Mars/Base\"\n",
            "not an IANA name",
        ),
        (
            "[jobs.forecast_refresh]\nschedule = \"0 2 * * *\"\nevery = \"1h\"\n",
            "not both",
        ),
    ] {
        let cfg = write_config(tmp.path(), body);
        let out = finopsia_command()
            .args([
                "job",
                "list",
                "--data-dir",
                tmp.path().join("d").to_str().unwrap(),
            ])
            .env("FINOPSIA_CONFIG", &cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{body}");
        assert!(err.contains(want), "{body}: {err}");
    }
}
