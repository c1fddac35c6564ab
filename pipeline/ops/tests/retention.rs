//! Retention in the `store_maintenance` job: what is older than each
//! `keep_*` goes, except what state depends on (a series' latest forecast
//! run, the newest event of a firing alert); quarantine stays unless asked.

use chrono::{DateTime, Duration, Utc};
use finopsia_ops::maintenance::{retention, MaintenanceConfig};
use finopsia_store::Store;

mod common;
use common::put;

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

async fn texts(dir: &std::path::Path, sql: &str) -> Vec<String> {
    use datafusion::arrow::array::{Array, AsArray};
    let mut store = Store::open(dir).unwrap();
    let mut out = Vec::new();
    for b in store.query_readonly(sql).await.unwrap() {
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let c = c.as_string::<i32>();
        for i in 0..c.len() {
            out.push(c.value(i).to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn retention_keeps_what_state_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let old = ts(now - Duration::days(400));
    let new = ts(now - Duration::days(1));
    let job = |id: &str, at: &str| {
        vec![
            ("job", "forecast_refresh".to_string()),
            ("run_id", id.to_string()),
            ("outcome", "ok".into()),
            ("started_at", at.to_string()),
            ("recorded_at", at.to_string()),
        ]
    };
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "job",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "run_id",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "outcome",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "started_at",
            finopsia_core::schema::ts_type(),
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "recorded_at",
            finopsia_core::schema::ts_type(),
            true,
        ),
    ]));
    put(dir, "job_runs", schema, &[job("a", &old), job("b", &new)]).await;
    // Series A: runs 1 and 2 old (2 latest); series B: run 1 old, its latest.
    let run = |series: &str, id: &str, at: &str| {
        vec![
            ("run_id", id.to_string()),
            ("series_id", series.to_string()),
            ("status", "ok".into()),
            ("run_at", at.to_string()),
        ]
    };
    put(
        dir,
        "forecast_runs",
        finopsia_ops::forecasts::runs_schema(),
        &[
            run("A", "1", &old),
            run("A", "2", &old),
            run("B", "1", &old),
        ],
    )
    .await;
    let point = |series: &str, id: &str| {
        vec![
            ("run_id", id.to_string()),
            ("series_id", series.to_string()),
            ("ds", "2025-01-01".into()),
            ("yhat", "1".into()),
        ]
    };
    put(
        dir,
        "forecasts",
        finopsia_ops::forecasts::forecasts_schema(),
        &[point("A", "1"), point("A", "2"), point("B", "1")],
    )
    .await;
    // Alert X still fires (old event); alert Y resolved long ago.
    let ev = |id: &str, alert: &str, kind: &str, at: &str| {
        vec![
            ("event_id", id.to_string()),
            ("alert_id", alert.to_string()),
            ("kind", kind.to_string()),
            ("at", at.to_string()),
        ]
    };
    let events_schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "event_id",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "alert_id",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "kind",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new("at", finopsia_core::schema::ts_type(), true),
    ]));
    put(
        dir,
        "alert_events",
        events_schema,
        &[
            ev("x1", "r/X", "firing", &old),
            ev("y1", "r/Y", "firing", &old),
            ev("y2", "r/Y", "resolved", &old),
        ],
    )
    .await;
    put(
        dir,
        "quarantine",
        finopsia_core::schema::QUARANTINE.clone(),
        &[vec![
            ("source", "bank".to_string()),
            ("quarantined_at", old.clone()),
        ]],
    )
    .await;

    let cfg = MaintenanceConfig::default();
    let mut store = Store::open(dir).unwrap();
    let deleted = retention(&mut store, &cfg, now).await.unwrap();
    assert_eq!(texts(dir, "SELECT run_id FROM job_runs").await, ["b"]);
    assert_eq!(
        texts(dir, "SELECT CONCAT(series_id, run_id) FROM forecast_runs").await,
        ["A2", "B1"]
    );
    assert_eq!(
        texts(dir, "SELECT CONCAT(series_id, run_id) FROM forecasts").await,
        ["A2", "B1"]
    );
    assert_eq!(
        texts(dir, "SELECT event_id FROM alert_events").await,
        ["x1"]
    );
    assert_eq!(
        texts(dir, "SELECT source FROM quarantine").await,
        ["bank"],
        "kept by default"
    );
    assert_eq!(deleted["job_runs"], 1, "{deleted:?}");

    // Asked to, quarantine goes too; a second pass finds nothing more.
    let cfg = MaintenanceConfig {
        keep_quarantine: "30d".into(),
        ..Default::default()
    };
    let deleted = retention(&mut store, &cfg, now).await.unwrap();
    assert!(texts(dir, "SELECT source FROM quarantine").await.is_empty());
    assert_eq!(deleted.values().sum::<usize>(), 1, "{deleted:?}");
}
