//! `finopsia bench forecast`: the forecast refresh of many generated series
//! on all cores, and per-series Prophet fit+predict against Python Prophet on
//! the same series in the same run.

use std::path::Path;
use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate};
use finopsia_forecast::recurring::{Cadence, Recurring};
use finopsia_forecast::refresh::{self, Job, RefreshConfig, Status};
use finopsia_forecast::series::{Kind, SeriesKey};
use finopsia_forecast::{Forecaster, ProphetSettings, Series};
use serde::Serialize;

use super::{io_err, Result};

#[derive(Debug, Serialize)]
pub struct ForecastBenchReport {
    pub series: usize,
    pub days: usize,
    pub horizon_days: usize,
    pub backtest_folds: usize,
    pub threads: usize,
    /// Compiling the Stan model once (`Forecaster::new`).
    pub optimizer_startup_seconds: f64,
    /// Refresh of all series with no earlier fit: one Prophet fit each from
    /// Prophet's default initialization (recurring holidays, 1000-sample
    /// intervals), balance and runway; no backtest.
    pub cold_refresh_seconds: f64,
    pub cold_refresh_failed: usize,
    /// Refresh after one new day of data for every series, as `finopsia
    /// forecast` and the service run it: each fit warm-started from the
    /// series' previous parameters; backtest scores kept from the last
    /// backtest.
    pub refresh_seconds: f64,
    pub refresh_series_per_sec: f64,
    pub refresh_failed: usize,
    /// Series whose warm start was used (the rest fitted cold).
    pub refresh_warm_started: usize,
    /// The first refresh with the rolling-origin backtest for every series
    /// (`backtest_folds` more fits each), as also once per
    /// `backtest_interval`; cold fits.
    pub refresh_with_backtest_seconds: f64,
    pub refresh_with_backtest_failed: usize,
    /// The model choice of that refresh: series served each model, and the
    /// distribution of Prophet's skill over the best baseline (weekly
    /// totals) across series.
    pub served: std::collections::BTreeMap<String, usize>,
    pub skill_p10: f64,
    pub skill_median: f64,
    pub skill_p90: f64,
    /// Share of series whose 80% interval needed rescaling, and the median
    /// raw and calibrated backtest coverage.
    pub calibrated_share: f64,
    pub coverage_median: f64,
    pub calibrated_coverage_median: f64,
    /// Over the sampled series, after the new day: mean |yhat warm-started -
    /// yhat cold| / mean |y| (mean and max), showing the warm start reaches
    /// the same forecast.
    pub warm_vs_cold_rel_diff_mean: f64,
    pub warm_vs_cold_rel_diff_max: f64,
    /// Per-series Prophet fit+predict (no backtest), one thread.
    pub sample: usize,
    pub finopsia_fit_predict_ms_median: f64,
    pub python_fit_predict_ms_median: Option<f64>,
    /// Python median time / ours.
    pub speedup_vs_python: Option<f64>,
    /// Mean over the sampled series of mean |yhat ours - yhat Prophet| / mean |y|.
    pub yhat_rel_diff_mean: Option<f64>,
    pub yhat_rel_diff_max: Option<f64>,
}

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A daily net-flow series with trend, weekly and yearly seasonality, noise,
/// and a monthly payroll and rent; the two patterns come with it.
fn generate(i: usize, days: usize, end: NaiveDate) -> (Series, Vec<Recurring>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let start = end - Duration::days(days as i64 - 1);
    let level = 500.0 + 4_000.0 * rng.unit();
    let trend = level * 0.0005 * rng.normal();
    let yearly = level * 0.3 * rng.unit();
    let noise = level * 0.15;
    let payroll_day = 20 + (rng.next() % 9) as u32;
    let payroll = level * (8.0 + 6.0 * rng.unit());
    let rent = level * (2.0 + 2.0 * rng.unit());
    let weekly: Vec<f64> = (0..7).map(|_| level * 0.2 * rng.normal()).collect();
    let mut s = Series::default();
    let (mut pay_dates, mut rent_dates) = (Vec::new(), Vec::new());
    for t in 0..days {
        let d = start + Duration::days(t as i64);
        let tf = t as f64;
        let mut y = level
            + trend * tf
            + yearly * (2.0 * std::f64::consts::PI * tf / 365.25).sin()
            + weekly[d.weekday().num_days_from_monday() as usize]
            + noise * rng.normal();
        if d.day() == payroll_day {
            y -= payroll;
            pay_dates.push(d);
        }
        if d.day() == 1 {
            y -= rent;
            rent_dates.push(d);
        }
        s.ds.push(d);
        s.y.push(y);
    }
    let pattern = |key: &str, dom: u32, amount: f64, dates: Vec<NaiveDate>| Recurring {
        account_id: format!("acc{i}"),
        currency: "NGN".into(),
        key: key.into(),
        category: None,
        direction: "outflow",
        cadence: Cadence::Monthly,
        day_of_month: dom,
        amount: -amount,
        next_expected: Cadence::Monthly.step(*dates.last().expect("dates"), dom),
        occurrences: dates,
    };
    let rec = vec![
        pattern("payroll", payroll_day, payroll, pay_dates),
        pattern("rent", 1, rent, rent_dates),
    ];
    (s, rec)
}

const PYTHON_BENCH: &str = r#"
import json, logging, sys, time
import pandas as pd
logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
logging.getLogger("prophet").setLevel(logging.WARNING)
from prophet import Prophet
paths, horizon = sys.argv[2:], int(sys.argv[1])
out = []
for p in paths:
    df = pd.read_csv(p, parse_dates=["ds"])
    t = time.perf_counter()
    m = Prophet()
    m.fit(df)
    fc = m.predict(m.make_future_dataframe(periods=horizon, include_history=False))
    ms = (time.perf_counter() - t) * 1000
    out.append({"ms": ms, "yhat": fc["yhat"].tolist()})
print(json.dumps(out))
"#;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the benchmark; `python` (with prophet) adds the side-by-side baseline.
pub fn forecast_bench(
    work_dir: &Path,
    series: usize,
    days: usize,
    sample: usize,
    python: Option<&str>,
    progress: bool,
) -> Result<ForecastBenchReport> {
    std::fs::create_dir_all(work_dir).map_err(io_err(work_dir))?;
    let end = NaiveDate::from_ymd_opt(2025, 6, 30).expect("date");
    let t = Instant::now();
    let fx = Forecaster::new();
    let startup = t.elapsed().as_secs_f64();
    let cfg = RefreshConfig::default();
    let jobs: Vec<Job> = (0..series)
        .map(|i| {
            let (s, rec) = generate(i, days, end);
            Job {
                key: SeriesKey {
                    kind: Kind::AccountNetFlow,
                    currency: "NGN".into(),
                    subject: format!("acc{i}"),
                },
                balance: Some(100_000.0 + s.y.iter().sum::<f64>()),
                series: s,
                recurring: rec,
                threshold: 0.0,
                backtest: false,
                init: None,
                carried: None,
            }
        })
        .collect();
    let bar = progress.then(|| indicatif::ProgressBar::new(series as u64));
    let tick = |done: usize, _: usize| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    };
    let timed = |jobs: &[Job]| {
        if let Some(b) = &bar {
            b.reset();
        }
        let t = Instant::now();
        let outcomes = refresh::run(&fx, &cfg, jobs, &tick);
        let secs = t.elapsed().as_secs_f64();
        let failed: Vec<_> = outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .collect();
        for o in &failed {
            tracing::warn!("series {} failed: {:?}", o.key.id(), o.error);
            // Keep the failing input for `finopsia forecast --input`.
            if let Some(job) = jobs.iter().find(|j| j.key == o.key) {
                let name = o.key.subject.clone();
                let mut text = String::from("ds,y\n");
                for (d, y) in job.series.ds.iter().zip(&job.series.y) {
                    text.push_str(&format!("{d},{y:?}\n"));
                }
                let _ = std::fs::write(work_dir.join(format!("failed-{name}.csv")), text);
                let last = *job.series.ds.last().expect("non-empty");
                let refs: Vec<&Recurring> = job.recurring.iter().collect();
                let mut hol = String::from("holiday,ds\n");
                for r in finopsia_forecast::recurring::holiday_rows(
                    &refs,
                    last,
                    last + Duration::days(90),
                ) {
                    hol.push_str(&format!("{},{}\n", r.name, r.ds));
                }
                let _ = std::fs::write(work_dir.join(format!("failed-{name}-holidays.csv")), hol);
            }
        }
        let failed = failed.len();
        (secs, failed, outcomes)
    };
    let (cold_s, cold_failed, cold) = timed(&jobs);
    // One more day of data for every series, refit warm-started.
    let next_end = end + Duration::days(1);
    let next: Vec<Job> = jobs
        .iter()
        .zip(&cold)
        .enumerate()
        .map(|(i, (j, o))| {
            let (s, rec) = generate(i, days + 1, next_end);
            Job {
                balance: Some(100_000.0 + s.y.iter().sum::<f64>()),
                series: s,
                recurring: rec,
                init: o.params.clone(),
                ..j.clone()
            }
        })
        .collect();
    let (refresh_s, failed, warm) = timed(&next);
    let warm_started = warm.iter().filter(|o| o.warm).count();
    let with_backtest: Vec<Job> = jobs
        .iter()
        .cloned()
        .map(|j| Job {
            backtest: true,
            ..j
        })
        .collect();
    let (backtest_s, backtest_failed, chosen) = timed(&with_backtest);
    let mut served = std::collections::BTreeMap::new();
    for o in &chosen {
        *served
            .entry(o.model.map_or("none", |m| m.as_str()).to_string())
            .or_insert(0) += 1;
    }
    let pick = |f: &dyn Fn(&finopsia_forecast::backtest::Score) -> Option<f64>| {
        let mut v: Vec<f64> = chosen
            .iter()
            .filter_map(|o| o.backtest.as_ref().and_then(f))
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let q = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    };
    let skills = pick(&|b| b.skill);
    let coverage = pick(&|b| Some(b.coverage));
    let calibrated = pick(&|b| b.calibrated_coverage);
    let scales = pick(&|b| b.interval_scale);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    // Per-series fit+predict, Prophet defaults, no holidays, one thread.
    let sample = sample.min(series);
    let settings = ProphetSettings::default();
    let horizon = cfg.horizon_days;
    let mut ours_ms = Vec::new();
    let mut ours_yhat = Vec::new();
    for job in &jobs[..sample] {
        let t = Instant::now();
        let fc = fx
            .prophet(&job.series, &[], horizon, &settings)
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        ours_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ours_yhat.push(fc.yhat);
    }
    let ours_median = median(&mut ours_ms.clone());
    // The warm-started forecasts after the new day against cold fits.
    let mut warm_rel = Vec::new();
    for (job, o) in next[..sample].iter().zip(&warm) {
        let (Some(w), true) = (&o.forecast, o.warm) else {
            continue;
        };
        let train_end = *job.series.ds.last().expect("non-empty");
        let refs: Vec<&Recurring> = job.recurring.iter().collect();
        let holidays = finopsia_forecast::recurring::holiday_rows(
            &refs,
            train_end,
            train_end + Duration::days(horizon as i64),
        );
        let c = fx
            .prophet(&job.series, &holidays, horizon, &cfg.settings())
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        let s = &job.series;
        let scale = s.y.iter().map(|v| v.abs()).sum::<f64>() / s.len() as f64;
        let mad = c
            .yhat
            .iter()
            .zip(&w.yhat)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / horizon as f64;
        warm_rel.push(mad / scale);
    }
    let (mut py_median, mut rel_mean, mut rel_max) = (None, None, None);
    if let Some(py) = python {
        let script = work_dir.join("bench_prophet.py");
        std::fs::write(&script, PYTHON_BENCH).map_err(io_err(&script))?;
        let mut paths = Vec::new();
        for (i, job) in jobs[..sample].iter().enumerate() {
            let p = work_dir.join(format!("series-{i}.csv"));
            let mut text = String::from("ds,y\n");
            for (d, y) in job.series.ds.iter().zip(&job.series.y) {
                text.push_str(&format!("{d},{y:?}\n"));
            }
            std::fs::write(&p, text).map_err(io_err(&p))?;
            paths.push(p);
        }
        let out = std::process::Command::new(py)
            .arg(&script)
            .arg(horizon.to_string())
            .args(&paths)
            .output()
            .map_err(io_err(py))?;
        if !out.status.success() {
            return Err(anyhow::anyhow!(format!(
                "python benchmark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| anyhow::anyhow!(format!("python benchmark output: {e}")))?;
        let runs = v.as_array().cloned().unwrap_or_default();
        let mut ms: Vec<f64> = runs.iter().filter_map(|r| r["ms"].as_f64()).collect();
        py_median = Some(median(&mut ms));
        let mut rels = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            let theirs: Vec<f64> = r["yhat"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default();
            let s = &jobs[i].series;
            let scale = s.y.iter().map(|v| v.abs()).sum::<f64>() / s.len() as f64;
            let mad = theirs
                .iter()
                .zip(&ours_yhat[i])
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / theirs.len().max(1) as f64;
            rels.push(mad / scale);
        }
        rel_mean = Some(rels.iter().sum::<f64>() / rels.len().max(1) as f64);
        rel_max = rels.iter().copied().reduce(f64::max);
    }
    Ok(ForecastBenchReport {
        series,
        days,
        horizon_days: horizon,
        backtest_folds: cfg.backtest_folds,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        optimizer_startup_seconds: startup,
        cold_refresh_seconds: cold_s,
        cold_refresh_failed: cold_failed,
        refresh_seconds: refresh_s,
        refresh_series_per_sec: series as f64 / refresh_s,
        refresh_failed: failed,
        refresh_warm_started: warm_started,
        refresh_with_backtest_seconds: backtest_s,
        refresh_with_backtest_failed: backtest_failed,
        served,
        skill_p10: q(&skills, 0.1),
        skill_median: q(&skills, 0.5),
        skill_p90: q(&skills, 0.9),
        calibrated_share: scales.iter().filter(|s| **s != 1.0).count() as f64
            / scales.len().max(1) as f64,
        coverage_median: q(&coverage, 0.5),
        calibrated_coverage_median: q(&calibrated, 0.5),
        sample,
        finopsia_fit_predict_ms_median: ours_median,
        python_fit_predict_ms_median: py_median,
        speedup_vs_python: py_median.map(|p| p / ours_median),
        yhat_rel_diff_mean: rel_mean,
        yhat_rel_diff_max: rel_max,
        warm_vs_cold_rel_diff_mean: warm_rel.iter().sum::<f64>() / warm_rel.len() as f64,
        warm_vs_cold_rel_diff_max: warm_rel.iter().copied().fold(f64::NAN, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated series 221 with its payroll and rent holidays makes every
    /// Stan optimizer attempt fail (each holiday alone fits; Python Prophet
    /// fits both): the refresh must still forecast it, with Prophet without
    /// the holidays, and say so.
    #[test]
    fn optimizer_failure_with_holidays_still_forecasts() {
        let end = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        let (series, recurring) = generate(221, 1095, end);
        let job = Job {
            key: SeriesKey {
                kind: Kind::AccountNetFlow,
                currency: "NGN".into(),
                subject: "acc221".into(),
            },
            balance: Some(1000.0),
            series,
            recurring,
            threshold: 0.0,
            backtest: false,
            init: None,
            carried: None,
        };
        let cfg = RefreshConfig {
            horizon_days: 10,
            uncertainty_samples: 100,
            ..RefreshConfig::default()
        };
        let o = refresh::run_one(&Forecaster::new(), &cfg, &job);
        assert_eq!(o.status, Status::Ok, "{:?}", o.error);
        assert_eq!(o.forecast.as_ref().map(|f| f.yhat.len()), Some(10));
        if o.holidays == 0 {
            let e = o.error.as_deref().unwrap_or_default();
            assert!(e.contains("fitted without them"), "{e}");
        }
        eprintln!("holidays used: {}, note: {:?}", o.holidays, o.error);
    }
}
