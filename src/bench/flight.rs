//! `finopsia bench flight`: a whole `transactions` table streamed to
//! pyarrow over Flight SQL, against `finopsia query --format csv` of the
//! same table in the same invocation (the baseline), with the server's
//! peak resident memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use super::{io_err, Result, Server};

#[derive(Debug, Serialize)]
pub struct FlightBenchReport {
    pub rows: u64,
    /// `finopsia query --format csv "SELECT * FROM transactions"` to a file.
    pub csv_seconds: f64,
    pub csv_rows_per_sec: f64,
    pub csv_bytes: u64,
    /// The same statement streamed to pyarrow.flight (batches counted,
    /// nothing kept), from GetFlightInfo to the last batch.
    pub flight_seconds: f64,
    pub flight_rows_per_sec: f64,
    pub flight_batches: u64,
    /// flight rows/s over CSV rows/s.
    pub speedup: f64,
    /// The service's resident memory before the stream and its peak.
    pub server_rss_mib_before: u64,
    pub server_rss_mib_peak: u64,
}

const CLIENT: &str = r#"
import json, sys, time
import pyarrow.flight as fl

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload

uri, token, sql = sys.argv[1], sys.argv[2], sys.argv[3]
cmd = field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + field(2, field(1, sql.encode()))
client = fl.FlightClient(uri)
options = fl.FlightCallOptions(headers=[(b"authorization", ("Bearer " + token).encode())])
started = time.monotonic()
info = client.get_flight_info(fl.FlightDescriptor.for_command(cmd), options)
rows = batches = 0
for e in info.endpoints:
    for chunk in client.do_get(e.ticket, options):
        rows += chunk.data.num_rows
        batches += 1
print(json.dumps({"rows": rows, "batches": batches, "seconds": time.monotonic() - started}))
"#;

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn flight_bench(dir: &Path, rows: u64, python: &str) -> Result<FlightBenchReport> {
    let exe = std::env::current_exe()?;
    let work = dir.join("flight");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let data = work.join("data");
    let d = data.to_string_lossy().to_string();
    let csv = work.join("transactions.csv");
    eprintln!("generating and importing {rows} transactions …");
    super::import::generate_csv(&csv, rows)?;
    let out = Command::new(&exe)
        .args(["import", "--data-dir", &d, csv.to_str().unwrap_or("")])
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .output()?;
    if !out.status.success() {
        anyhow::bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (_, token) = finopsia_serve::TokenStore::open(&data)
        .create(finopsia_serve::Role::Read, Some("bench"))?;
    let sql = "SELECT * FROM transactions";

    // Baseline: the CLI's CSV export of the same table.
    let export = work.join("export.csv");
    let t = Instant::now();
    let out = Command::new(&exe)
        .args(["query", "--format", "csv", "--data-dir", &d, sql])
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .stdout(std::fs::File::create(&export).map_err(io_err(&export))?)
        .stderr(Stdio::piped())
        .output()?;
    let csv_seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("query failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let csv_bytes = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);

    let log = std::fs::File::create(work.join("service.log")).map_err(io_err(&work))?;
    let child = Command::new(&exe)
        .args(["run", "--data-dir", &d])
        .env("RUST_LOG", "warn")
        .env_remove("FINOPSIA_CONFIG")
        .env("FINOPSIA__HTTP__ENABLED", "false")
        .env("FINOPSIA__FLIGHT__ADDR", "127.0.0.1:0")
        .env("FINOPSIA__FORECAST__REFRESH_INTERVAL", "0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let _server = Server(child);
    let addr = super::wait_note(&data.join("state/flight.json"), &work)?;
    let before = status_kb(pid, "VmRSS:");
    let out = Command::new(python)
        .args(["-c", CLIENT, &format!("grpc://{addr}"), &token, sql])
        .output()
        .map_err(|e| anyhow::anyhow!("{python}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "the pyarrow client failed (does {python} have pyarrow?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let peak = status_kb(pid, "VmHWM:");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let flight_rows = r["rows"].as_u64().unwrap_or(0);
    if flight_rows != rows {
        anyhow::bail!("streamed {flight_rows} rows, the table has {rows}");
    }
    let flight_seconds = r["seconds"].as_f64().unwrap_or(f64::NAN);
    let csv_rps = rows as f64 / csv_seconds;
    let flight_rps = rows as f64 / flight_seconds;
    Ok(FlightBenchReport {
        rows,
        csv_seconds,
        csv_rows_per_sec: csv_rps,
        csv_bytes,
        flight_seconds,
        flight_rows_per_sec: flight_rps,
        flight_batches: r["batches"].as_u64().unwrap_or(0),
        speedup: flight_rps / csv_rps,
        server_rss_mib_before: before / 1024,
        server_rss_mib_peak: peak / 1024,
    })
}
