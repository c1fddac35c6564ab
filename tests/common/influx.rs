//! A real InfluxDB 1.x (`influxd`, Debian's 1.6.7) and a real
//! VictoriaMetrics on 127.0.0.1, for tests.
//!
//! The binaries come from `FINOPSIA_TEST_INFLUXD` / `FINOPSIA_TEST_VICTORIA`
//! or the PATH (tests/run.sh installs Debian's `influxdb` and
//! `victoria-metrics`); a test that needs them fails loudly without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nats::free_port;

fn find(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} not found: run the suite with `bash tests/run.sh` (it installs Debian's influxdb and victoria-metrics), or set {env}")
    })
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `influxd` 1.x with its data in a temporary directory; can be stopped and
/// started again on the same port and data.
pub struct Influxd {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    /// With TLS: the PEM of the CA that signed the server's certificate.
    pub ca: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Influxd {
    /// Starts a server and creates database `db`.
    pub fn start(db: &str) -> Influxd {
        Influxd::start_with(db, false)
    }

    /// Starts a server that serves https only, with a certificate for
    /// 127.0.0.1 signed by a throw-away CA (`ca`), and creates `db`.
    pub fn start_tls(db: &str) -> Influxd {
        Influxd::start_with(db, true)
    }

    fn start_with(db: &str, tls: bool) -> Influxd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rpc = free_port();
        let d = dir.path().display();
        let https = if tls {
            super::tls::throwaway_ca(dir.path());
            format!(
                "  https-enabled = true\n  https-certificate = \"{d}/server.pem\"\n  \
                 https-private-key = \"{d}/server.key\"\n"
            )
        } else {
            String::new()
        };
        let config = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n{https}\
             [logging]\n  level = \"warn\"\n"
        );
        std::fs::write(dir.path().join("influxd.conf"), config).unwrap();
        let scheme = if tls { "https" } else { "http" };
        let mut s = Influxd {
            child: None,
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
            ca: tls.then(|| dir.path().join("ca.pem")),
            dir,
        };
        s.resume();
        s.query(&format!("CREATE DATABASE \"{db}\""), None);
        s
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    /// Starts it again (same port, same data).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(find("FINOPSIA_TEST_INFLUXD", "influxd"))
            .arg("run")
            .arg("-config")
            .arg(self.dir.path().join("influxd.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start influxd");
        self.child = Some(child);
        wait_port(self.port, "influxd", &self.log());
    }

    /// Kills it (SIGKILL).
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `curl` that trusts this server's CA.
    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        c
    }

    /// Runs InfluxQL; returns the first statement's series.
    pub fn query(&self, q: &str, db: Option<&str>) -> Vec<serde_json::Value> {
        let mut url = format!("{}/query?epoch=s&q={}", self.url, enc(q));
        if let Some(db) = db {
            url.push_str(&format!("&db={}", enc(db)));
        }
        let out = self
            .curl()
            .args(["-sS", "--fail-with-body", "-XPOST", &url])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "InfluxQL {q}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        if let Some(e) = v["results"][0]["error"].as_str() {
            panic!("InfluxQL {q}: {e}");
        }
        v["results"][0]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every row of `SELECT * FROM measurement` as column → value maps.
    pub fn rows(
        &self,
        db: &str,
        measurement: &str,
    ) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let mut out = Vec::new();
        for s in self.query(&format!("SELECT * FROM \"{measurement}\""), Some(db)) {
            let cols: Vec<String> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            for v in s["values"].as_array().unwrap() {
                let mut m = serde_json::Map::new();
                for (c, x) in cols.iter().zip(v.as_array().unwrap()) {
                    m.insert(c.clone(), x.clone());
                }
                out.push(m);
            }
        }
        out
    }

    /// Writes line protocol directly (`/write`).
    pub fn write(&self, db: &str, lines: &str) -> (u16, String) {
        let out = self
            .curl()
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-XPOST"])
            .arg(format!("{}/write?db={}&precision=ns", self.url, enc(db)))
            .arg("--data-binary")
            .arg(lines)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.pause();
    }
}

/// VictoriaMetrics (accepts the InfluxDB v1 and v2 write APIs).
pub struct Victoria {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Victoria {
    pub fn start() -> Victoria {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("vm.log");
        let child = Command::new(find("FINOPSIA_TEST_VICTORIA", "victoria-metrics"))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start victoria-metrics");
        wait_port(port, "victoria-metrics", &log);
        Victoria {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `/api/v1/export` of the series matching `selector`, one JSON object
    /// per series (`metric`, `values`, `timestamps`).
    pub fn export(&self, selector: &str) -> Vec<serde_json::Value> {
        let _ = Command::new("curl")
            .args(["-sS", &format!("{}/internal/force_flush", self.url)])
            .output();
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body"])
            .arg(format!(
                "{}/api/v1/export?start=0&match[]={}",
                self.url,
                enc(selector)
            ))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use finopsia_connectors::influx::urlencode as enc;
