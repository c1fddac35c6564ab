//! `finopsia bench api`: the REST API under `wrk` (Debian) on loopback.
//!
//! Builds a store of generated transactions (`finopsia import`) with
//! forecasts (`finopsia forecast`), starts `finopsia run` on it, and runs
//! `wrk` against a transactions page, a forecast read and an ingest of
//! `--ingest-records` records per request: each once at a fixed offered
//! rate (`--rate`, paced per connection by wrk's `delay()`), for latency
//! percentiles, and once closed-loop for the most requests per second. The
//! baseline of the same invocation is `GET /health` (no store access), so
//! the store's share of each read is visible.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::{find_binary, io_err, Result, Server};

#[derive(Debug, Serialize)]
pub struct Run {
    pub name: String,
    /// Target requests/s (`None`: closed loop, as fast as answers come).
    pub offered_rate: Option<u64>,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub rows: u64,
    pub connections: u32,
    pub seconds: u32,
    pub ingest_records: usize,
    pub runs: Vec<Run>,
}

fn ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, factor) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Requests/s, p50, p90, p99 (ms) and errors from wrk's `--latency` output.
fn parse_wrk(out: &str) -> Result<(f64, f64, f64, f64, u64)> {
    let mut rps = None;
    let (mut p50, mut p90, mut p99) = (None, None, None);
    let mut errors = 0u64;
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = ms(v);
        } else if let Some(v) = l.strip_prefix("90%") {
            p90 = ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = ms(v);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    match (rps, p50, p90, p99) {
        (Some(r), Some(a), Some(b), Some(c)) => Ok((r, a, b, c, errors)),
        _ => anyhow::bail!("cannot read wrk's output:\n{out}"),
    }
}

/// The Lua script of one scenario: headers, pacing, and for ingest a body
/// of new records per request (ids unique per wrk thread and request).
fn script(token: &str, path: &str, delay_ms: Option<f64>, ingest: Option<usize>) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
    ));
    if let Some(d) = delay_ms {
        s.push_str(&format!("function delay() return {d:.3} end\n"));
    }
    if let Some(n) = ingest {
        s.push_str(&format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
function request()
  counter = counter + 1
  local t = {{}}
  for j = 1, {n} do
    t[j] = string.format('{{"transaction_id":"w%d-%d-%d","account_id":"bench","amount":"%d.%02d","currency":"USD","direction":"outflow","description":"bench %d","transaction_date":"2025-05-%02d"}}', tid, counter, j, j, j % 100, j, 1 + j % 28)
  end
  return wrk.format(nil, "{path}", nil, "[" .. table.concat(t, ",") .. "]")
end
"#
        ));
    }
    s
}

/// Percent-encodes a path segment (series ids hold `:` and `/`).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn run_finopsia(exe: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "finopsia {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn api_bench(
    dir: &Path,
    rows: u64,
    seconds: u32,
    connections: u32,
    rate: u64,
    ingest_records: usize,
    wrk: Option<PathBuf>,
) -> Result<ApiReport> {
    let wrk = find_binary(
        wrk,
        "wrk",
        "install Debian's wrk (apt install wrk) or pass --wrk",
    )?;
    let exe = std::env::current_exe()?;
    let work = dir.join("api");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let data = work.join("data");
    let csv = work.join("transactions.csv");
    eprintln!("generating and importing {rows} transactions …");
    super::import::generate_csv(&csv, rows)?;
    let d = data.to_string_lossy().to_string();
    run_finopsia(
        &exe,
        &["import", "--data-dir", &d, csv.to_str().unwrap_or("")],
    )?;
    eprintln!("forecasting …");
    run_finopsia(&exe, &["forecast", "--data-dir", &d, "--horizon", "30"])?;
    let (_, token) = finopsia_serve::TokenStore::open(&data)
        .create(finopsia_serve::Role::Ingest, Some("bench"))?;
    let log = std::fs::File::create(work.join("service.log")).map_err(io_err(&work))?;
    let child = Command::new(&exe)
        .args(["run", "--data-dir", &d])
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .env("FINOPSIA__HTTP__ADDR", "127.0.0.1:0")
        .env("FINOPSIA__FLIGHT__ADDR", "127.0.0.1:0")
        .env("FINOPSIA__HTTP__INGEST_RATE", "1000000")
        .env("FINOPSIA__HTTP__INGEST_BURST", "1000000")
        .env("FINOPSIA__HTTP__MAX_BODY_BYTES", "268435456")
        .env("FINOPSIA__FORECAST__REFRESH_INTERVAL", "0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let _server = Server(child);
    let addr = super::wait_note(&data.join("state/http.json"), &work)?;
    // A series id for the forecast read.
    let series = {
        let url = format!("http://{addr}/api/v1/forecasts");
        let out = Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {token}"), &url])
            .output()
            .map_err(|e| anyhow::anyhow!("curl: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| anyhow::anyhow!("forecast list: {e}"))?;
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["series_id"].as_str())
            .ok_or_else(|| anyhow::anyhow!("no forecast series in the store"))?
            .to_string()
    };
    let scenarios: Vec<(&str, String, Option<usize>)> = vec![
        ("health (baseline)", "/health".to_string(), None),
        (
            "transactions page (100)",
            "/api/v1/transactions?limit=100&currency=USD".to_string(),
            None,
        ),
        (
            "forecast points",
            format!("/api/v1/forecasts/{}/points", path_segment(&series)),
            None,
        ),
        ("ingest", "/api/v1/ingest".to_string(), Some(ingest_records)),
    ];
    let mut runs = Vec::new();
    for (name, path, ingest) in scenarios {
        for offered in [Some(rate), None] {
            // Ingest at the read rate would be rate × records/s; pace it
            // at a tenth of the read rate.
            let offered = match (offered, ingest) {
                (Some(r), Some(_)) => Some((r / 10).max(1)),
                (o, _) => o,
            };
            let delay = offered.map(|r| 1000.0 * connections as f64 / r as f64);
            let lua = work.join("bench.lua");
            std::fs::write(&lua, script(&token, &path, delay, ingest)).map_err(io_err(&lua))?;
            let out = Command::new(&wrk)
                .args([
                    "-t2",
                    &format!("-c{connections}"),
                    &format!("-d{seconds}s"),
                    "--latency",
                    "-s",
                    lua.to_str().unwrap_or(""),
                    &format!("http://{addr}{path}"),
                ])
                .output()
                .map_err(|e| anyhow::anyhow!("{}: {e}", wrk.display()))?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let (rps, p50, p90, p99, errors) = parse_wrk(&text)?;
            eprintln!(
                "{name:<26} offered {:>10}: {rps:>9.0} req/s  p50 {p50:>7.2} ms  p90 {p90:>7.2} ms  p99 {p99:>7.2} ms  errors {errors}",
                offered.map_or("max".to_string(), |r| format!("{r}/s"))
            );
            runs.push(Run {
                name: name.to_string(),
                offered_rate: offered,
                requests_per_sec: rps,
                p50_ms: p50,
                p90_ms: p90,
                p99_ms: p99,
                errors,
            });
        }
    }
    Ok(ApiReport {
        rows,
        connections,
        seconds,
        ingest_records,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 2s test @ http://127.0.0.1:1/health\n  Latency Distribution\n     50%  612.00us\n     75%    1.01ms\n     90%    2.50ms\n     99%   12.34ms\n  2000 requests in 2.00s, 1.2MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:   1000.50\n";
        let (rps, p50, p90, p99, errors) = parse_wrk(out).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(rps, 1000.5) && close(p50, 0.612) && close(p90, 2.5) && close(p99, 12.34));
        assert_eq!(errors, 7);
        assert!(parse_wrk("nothing").is_err());
    }
}
