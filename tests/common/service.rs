//! A `finopsia run` service process for end-to-end tests: started with a
//! config file and environment, its log captured, stopped by SIGTERM or
//! killed with SIGKILL (also when a test fails, on drop).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::finopsia_command;

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("finopsia.toml");
    std::fs::write(&p, body).unwrap();
    p
}

pub struct Service {
    pub child: Child,
    log: PathBuf,
}

impl Service {
    pub fn start(data: &Path, config: &Path, env: &[(&str, &str)]) -> Service {
        Service::start_with_args(data, config, env, &[])
    }

    /// Like `start`, with more arguments after `run --data-dir DIR`.
    pub fn start_with_args(
        data: &Path,
        config: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Service {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = data.with_extension(format!("{n}.log"));
        let mut cmd = finopsia_command();
        cmd.args(["run", "--data-dir", data.to_str().unwrap()])
            .args(args)
            .env("FINOPSIA_CONFIG", config)
            .env(
                "RUST_LOG",
                "finopsia=info,finopsia_engine=info,finopsia_connectors=info,warn",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Service {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `marker` (the service failing first
    /// fails the test with its log).
    pub fn wait_for_log(&mut self, marker: &str) {
        let t = Instant::now();
        while !self.log().contains(marker) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("service exited ({status}):\n{}", self.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "service log never said {marker:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit. The signal is sent once the
    /// service has said "starting" (its handlers are installed by then; a
    /// signal before that kills the process like any program's).
    pub fn stop(mut self) {
        if self.child.try_wait().unwrap().is_none() {
            self.wait_for_log("starting");
        }
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "service exit {status}:\n{}", self.log());
                return;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("service did not stop:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn drop_file(inbox: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(inbox).unwrap();
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
