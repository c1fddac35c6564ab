//! `/metrics`: the service's counters in the Prometheus text format (0.0.4).
//! Records per source and outcome, rejects per source and reason, batches
//! and their commit latency, watermark and event-time lag, open windows,
//! sinks, job runs and their durations, and what the service reads from the
//! store every minute and after each job (table versions and data files,
//! the model in use and its age, each series' forecast age).

use std::fmt::Write;

use finopsia_core::sink::{Histogram, MetricsSnapshot};

/// A label value, escaped as the text format wants (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

/// A sink metric: name, type, help, and its counter.
type SinkFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&finopsia_core::sink::SinkCounters) -> u64,
);

/// Renders a snapshot.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut o = Out(String::new());
    let now_ms = chrono::Utc::now().timestamp_millis();
    o.family(
        "finopsia_records_total",
        "counter",
        "Records per source and outcome (accepted, duplicate, quarantined) since start.",
    );
    for (source, c) in &m.sources {
        for (outcome, n) in [
            ("accepted", c.accepted),
            ("duplicate", c.duplicates),
            ("quarantined", c.quarantined),
        ] {
            o.sample(
                "finopsia_records_total",
                &[("source", source), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    o.family(
        "finopsia_source_idle_seconds",
        "gauge",
        "Seconds since a source last had records committed.",
    );
    for (source, seen) in &m.source_seen_ms {
        o.sample(
            "finopsia_source_idle_seconds",
            &[("source", source)],
            ((now_ms - seen).max(0) as f64) / 1000.0,
        );
    }
    o.family(
        "finopsia_quarantined_total",
        "counter",
        "Rejects quarantined per source and reason code since start.",
    );
    for ((source, reason), n) in &m.rejects {
        o.sample(
            "finopsia_quarantined_total",
            &[("source", source), ("reason", reason)],
            *n as f64,
        );
    }
    o.family(
        "finopsia_batch_duration_seconds",
        "histogram",
        "Micro-batch commit durations (records, rejects, windows, checkpoint).",
    );
    o.histogram("finopsia_batch_duration_seconds", &[], &m.batch_seconds);
    o.family(
        "finopsia_open_windows",
        "gauge",
        "Event-time windows a window table holds open in memory.",
    );
    for (table, n) in &m.open_windows {
        o.sample("finopsia_open_windows", &[("table", table)], *n as f64);
    }
    o.family(
        "finopsia_batches_total",
        "counter",
        "Micro-batches committed since start.",
    );
    o.sample("finopsia_batches_total", &[], m.batches as f64);
    let p = &m.pipeline;
    o.family(
        "finopsia_last_batch_seconds",
        "gauge",
        "Duration of the last micro-batch commit.",
    );
    o.sample(
        "finopsia_last_batch_seconds",
        &[],
        p.last_batch_ms as f64 / 1000.0,
    );
    if let Some(w) = p.watermark_us {
        o.family(
            "finopsia_watermark_seconds",
            "gauge",
            "Event-time watermark (seconds since the epoch).",
        );
        o.sample("finopsia_watermark_seconds", &[], w as f64 / 1e6);
    }
    if let Some(t) = p.max_event_time_us {
        o.family(
            "finopsia_event_lag_seconds",
            "gauge",
            "Wall clock minus the newest event time seen.",
        );
        o.sample(
            "finopsia_event_lag_seconds",
            &[],
            (now_ms as f64 / 1000.0) - t as f64 / 1e6,
        );
    }
    let sink_families: [SinkFamily; 6] = [
        (
            "finopsia_sink_delivered_total",
            "counter",
            "Outbox entries a sink delivered.",
            |s| s.delivered,
        ),
        (
            "finopsia_sink_retries_total",
            "counter",
            "Failed sink deliveries that were retried.",
            |s| s.retries,
        ),
        (
            "finopsia_sink_buffered",
            "gauge",
            "Outbox entries waiting for a sink.",
            |s| s.buffered,
        ),
        (
            "finopsia_sink_overflows_total",
            "counter",
            "Times a sink's buffer was full and dropped for a backfill.",
            |s| s.overflows,
        ),
        (
            "finopsia_sink_rejected_total",
            "counter",
            "Lines a sink's receiver refused (quarantined).",
            |s| s.rejected,
        ),
        (
            "finopsia_sink_points_total",
            "counter",
            "Points a sink wrote.",
            |s| s.points,
        ),
    ];
    for (name, kind, help, get) in sink_families {
        o.family(name, kind, help);
        for (sink, c) in &m.sinks {
            o.sample(name, &[("sink", sink)], get(c) as f64);
        }
    }
    o.family(
        "finopsia_job_runs_total",
        "counter",
        "Background job runs by outcome.",
    );
    for (job, j) in &m.jobs {
        o.sample(
            "finopsia_job_runs_total",
            &[("job", job), ("outcome", "ok")],
            j.runs.saturating_sub(j.failures) as f64,
        );
        o.sample(
            "finopsia_job_runs_total",
            &[("job", job), ("outcome", "failed")],
            j.failures as f64,
        );
    }
    o.family(
        "finopsia_job_last_duration_seconds",
        "gauge",
        "Duration of a job's last run.",
    );
    for (job, j) in &m.jobs {
        o.sample(
            "finopsia_job_last_duration_seconds",
            &[("job", job)],
            j.last_duration_ms as f64 / 1000.0,
        );
    }
    o.family(
        "finopsia_job_duration_seconds",
        "histogram",
        "Durations of finished job runs (retries included).",
    );
    for (job, h) in &m.job_seconds {
        o.histogram("finopsia_job_duration_seconds", &[("job", job)], h);
    }
    o.family(
        "finopsia_alerts_firing",
        "gauge",
        "Alerts of a rule firing at its last evaluation.",
    );
    for (rule, n) in &m.alerts_firing {
        o.sample("finopsia_alerts_firing", &[("rule", rule)], *n as f64);
    }
    o.family(
        "finopsia_alert_notifications_total",
        "counter",
        "Alert notifications sent per channel, delivered (ok) or failed.",
    );
    for ((channel, ok), n) in &m.notifications {
        o.sample(
            "finopsia_alert_notifications_total",
            &[
                ("channel", channel),
                ("outcome", if *ok { "ok" } else { "failed" }),
            ],
            *n as f64,
        );
    }
    let st = &m.store;
    o.family(
        "finopsia_store_table_version",
        "gauge",
        "A table's Delta version (read every minute and after each job).",
    );
    for (table, (version, _)) in &st.tables {
        o.sample(
            "finopsia_store_table_version",
            &[("table", table)],
            *version as f64,
        );
    }
    o.family(
        "finopsia_store_table_files",
        "gauge",
        "Data files a table's current version reads (compaction lowers it).",
    );
    for (table, (_, files)) in &st.tables {
        o.sample(
            "finopsia_store_table_files",
            &[("table", table)],
            *files as f64,
        );
    }
    if let Some(version) = &st.model_version {
        o.family(
            "finopsia_model_info",
            "gauge",
            "The categorization model in use (value 1, its version as a label).",
        );
        o.sample("finopsia_model_info", &[("version", version)], 1.0);
    }
    if let Some(created) = st.model_created_ms {
        o.family(
            "finopsia_model_age_seconds",
            "gauge",
            "Seconds since the model in use was trained.",
        );
        o.sample(
            "finopsia_model_age_seconds",
            &[],
            ((now_ms - created).max(0) as f64) / 1000.0,
        );
    }
    o.family(
        "finopsia_forecast_age_seconds",
        "gauge",
        "Seconds since a series' latest successful forecast run.",
    );
    for (series, at) in &st.forecast_run_ms {
        o.sample(
            "finopsia_forecast_age_seconds",
            &[("series", series)],
            ((now_ms - at).max(0) as f64) / 1000.0,
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_typed() {
        let mut m = finopsia_core::sink::Metrics::default().snapshot();
        m.sources.insert(
            "in\"box\n".into(),
            finopsia_core::Counts {
                accepted: 3,
                quarantined: 1,
                duplicates: 2,
            },
        );
        let text = render(&m);
        assert!(
            text.contains(
                "finopsia_records_total{source=\"in\\\"box\\n\",outcome=\"accepted\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE finopsia_records_total counter\n"));
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let mut o = Out(String::new());
        o.histogram("x_seconds", &[("job", "j")], &h);
        assert_eq!(
            o.0,
            "x_seconds_bucket{job=\"j\",le=\"0.1\"} 1\n\
             x_seconds_bucket{job=\"j\",le=\"1\"} 3\n\
             x_seconds_bucket{job=\"j\",le=\"+Inf\"} 4\n\
             x_seconds_sum{job=\"j\"} 4.25\n\
             x_seconds_count{job=\"j\"} 4\n"
        );
    }
}
