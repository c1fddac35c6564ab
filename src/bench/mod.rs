//! Benchmarks (`finopsia bench`): kept out of the library crates; each
//! measures a library path against a baseline run in the same invocation.

pub mod alerts;
pub mod api;
pub mod flight;
pub mod forecast;
pub mod import;
pub mod influx;
pub mod nats;
pub mod observe;

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// `map_err(io_err(path))`: an I/O error with the path it concerns.
pub fn io_err(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> anyhow::Error {
    let path = path.as_ref().display().to_string();
    move |e| anyhow::anyhow!("{path}: {e}")
}

/// A server process a benchmark started; killed on drop.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `given`, else `name` on the PATH, else an error saying what to do (`hint`).
pub fn find_binary(
    given: Option<std::path::PathBuf>,
    name: &str,
    hint: &str,
) -> Result<std::path::PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| anyhow::anyhow!("{name} not found: {hint}"))
}

/// Waits up to 30 s for a server to listen on 127.0.0.1:`port`.
pub fn wait_port(port: u16, what: &str) -> Result<()> {
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > std::time::Duration::from_secs(30) {
            anyhow::bail!("{what} did not start on port {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Waits up to 60 s for a service to write its address note (`state/
/// http.json`, `state/flight.json`) and returns the address.
pub fn wait_note(note: &std::path::Path, log_dir: &std::path::Path) -> Result<String> {
    let t = std::time::Instant::now();
    loop {
        if let Some(a) = std::fs::read(note)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["addr"].as_str().map(str::to_string))
        {
            return Ok(a);
        }
        if t.elapsed() > std::time::Duration::from_secs(60) {
            anyhow::bail!("the service did not start (see {})", log_dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
