//! `finopsia job list|run|history`: the scheduler's jobs from the command
//! line. A run goes to the running service when one holds the data
//! directory (a trigger file; the service records the run in `job_runs`),
//! else it runs in this process under the writer lock.

use std::path::Path;
use std::time::Duration;

use finopsia_ops::scheduler::{self, JobRuns, RunRecord, SystemClock, Trigger};
use finopsia_store::lock::WriterLock;

use crate::config::Config;

fn specs(config: &Config, data_dir: &Path) -> anyhow::Result<Vec<scheduler::JobSpec>> {
    Ok(finopsia_ops::jobs::builtin(finopsia_ops::jobs::Builtin {
        data_dir,
        forecast: &config.forecast,
        maintenance: &config.maintenance,
        jobs: &config.jobs,
        writer: None,
        alerts: &config.alerts,
        channels: finopsia_connectors::notify::build(&config.channels)?,
        sink_backlog: Some(sink_backlog(data_dir)),
        metrics: None,
        train: &config.train,
    })?)
}

/// Outbox entries waiting per sink, as `finopsia status` reads them.
pub fn sink_backlog(data_dir: &Path) -> finopsia_ops::jobs::SinkBacklog {
    let data_dir = data_dir.to_path_buf();
    std::sync::Arc::new(move || {
        crate::service::status(&data_dir)
            .map(|s| {
                s.sinks
                    .into_iter()
                    .map(|s| (s.name, s.buffered as u64))
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn list(config: &Config, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let jobs = specs(config, data_dir)?;
    let history = if data_dir.join("tables").is_dir() {
        JobRuns::open(data_dir)?.runs(None, 10_000).await?
    } else {
        Vec::new()
    };
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for j in &jobs {
        let last = history.iter().find(|r| r.job == j.name);
        rows.push(serde_json::json!({
            "name": j.name,
            "schedule": j.schedule.describe(),
            "after_data": j.after_data.map(|d| format!("{d:?}")),
            "timeout": format!("{:?}", j.timeout),
            "attempts": j.retry.max_attempts,
            "missed": j.missed,
            "next_due": j.schedule.next_after(now),
            "last_started": last.map(|r| r.started_at),
            "last_outcome": last.map(|r| r.outcome.clone()),
        }));
    }
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs are enabled (see [jobs] and forecast.refresh_interval)");
    }
    for (j, r) in jobs.iter().zip(&rows) {
        println!(
            "{}: {}{}; timeout {:?}, {} attempts, missed runs: {}; next {}; last {} ({})",
            j.name,
            j.schedule.describe(),
            j.after_data
                .map(|d| format!(", and {d:?} after new data"))
                .unwrap_or_default(),
            j.timeout,
            j.retry.max_attempts,
            r["missed"].as_str().unwrap_or(""),
            when(j.schedule.next_after(now)),
            r["last_started"].as_str().unwrap_or("never"),
            r["last_outcome"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

pub async fn run(config: &Config, data_dir: &Path, name: &str, wait: &str) -> anyhow::Result<bool> {
    let jobs = specs(config, data_dir)?;
    let Some(spec) = jobs.into_iter().find(|j| j.name == name) else {
        anyhow::bail!(
            "no enabled job {name:?} (built-in jobs: {}; see `finopsia job list`)",
            finopsia_ops::jobs::BUILTIN.join(", ")
        );
    };
    let wait = finopsia_core::timefmt::parse_duration(wait)
        .ok_or_else(|| anyhow::anyhow!("--wait {wait:?} is not a duration like 10m or 2h"))?;
    match WriterLock::acquire(data_dir, None) {
        Ok(_lock) => {
            let history = JobRuns::open(data_dir)?;
            let r = scheduler::run_once(&spec, &history, &SystemClock, None, Trigger::Manual, None)
                .await;
            print_outcome(&r);
            Ok(r.outcome == "ok")
        }
        Err(finopsia_store::Error::Locked { .. })
            if WriterLock::holder(data_dir).is_some_and(|h| h.inbox.is_some()) =>
        {
            let holder = WriterLock::holder(data_dir).expect("holder");
            let asked = chrono::Utc::now() - chrono::Duration::seconds(1);
            scheduler::request_run(data_dir, name)?;
            eprintln!(
                "asked the running service (pid {}) to run {name}; waiting for the outcome",
                holder.pid
            );
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Opened anew each time: a store keeps the table versions
                // it first read.
                let runs = JobRuns::open(data_dir)?.runs(Some(name), 20).await?;
                if let Some(r) = runs.iter().find(|r| {
                    r.trigger == "manual" && r.started_at >= asked && r.outcome != "running"
                }) {
                    print_outcome(r);
                    return Ok(r.outcome == "ok");
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "the service did not finish {name} within --wait {:?}; see `finopsia job history {name}`",
                        wait
                    );
                }
                // Not a service after all (it stopped): say so.
                if WriterLock::holder(data_dir).is_none() {
                    anyhow::bail!("the service stopped before running {name}; run it again");
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn print_outcome(r: &RunRecord) {
    let took = r
        .finished_at
        .map(|f| (f - r.started_at).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    match r.outcome.as_str() {
        "ok" => println!(
            "{}: ok after {} attempt(s) in {took:.1} s: {}",
            r.job,
            r.attempts,
            r.detail.as_deref().unwrap_or("")
        ),
        other => println!(
            "{}: {other} after {} attempt(s) in {took:.1} s: {}",
            r.job,
            r.attempts,
            r.error.as_deref().unwrap_or("")
        ),
    }
}

pub async fn history(
    data_dir: &Path,
    name: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    if !data_dir.join("tables").is_dir() {
        anyhow::bail!("no store in {} (pass --data-dir)", data_dir.display());
    }
    let runs = JobRuns::open(data_dir)?.runs(name, limit).await?;
    if json {
        println!("{}", serde_json::to_string(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("no job runs recorded yet");
    }
    for r in &runs {
        println!(
            "{}  {:<16} {:<9} {:<11} attempts {}  scheduled {}  finished {}  {}",
            when(Some(r.started_at)),
            r.job,
            r.trigger,
            r.outcome,
            r.attempts,
            when(r.scheduled_for),
            when(r.finished_at),
            r.error.as_deref().or(r.detail.as_deref()).unwrap_or("")
        );
    }
    Ok(())
}
