//! `/metrics`: the service's counters in the Prometheus text format (0.0.4).
//! What the pipeline counts today (records per source and outcome, batches,
//! watermark and lag, sinks, jobs); the operations work adds the rest.

use std::fmt::Write;

use finopsia_core::sink::MetricsSnapshot;

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
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_typed() {
        let mut m = MetricsSnapshot::default();
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
}
