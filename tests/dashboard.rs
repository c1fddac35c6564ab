//! The web dashboard of `finopsia run --sample` in headless Chromium
//! (Debian `chromium` and `chromium-driver`, Python selenium; installed by
//! `tests/run.sh`, never skipped): login link and token refusal, CSRF,
//! every chart against the REST API's numbers, a correction seen through
//! `finopsia query`, live updates without a reload, no console errors,
//! screenshots of each view at desktop and phone sizes in
//! `target/test-artifacts/dashboard/`. And the embedded uPlot against the
//! pinned npm package's integrity hash.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http::service_addr;
use common::service::*;
use common::*;

fn python() -> String {
    std::env::var("FINOPSIA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FINOPSIA_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs selenium into target/pyenv")
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn token(data: &Path, role: &str) -> String {
    ok(&[
        "token",
        "create",
        "--role",
        role,
        "--name",
        &format!("dashboard test {role}"),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .trim()
    .to_string()
}

#[test]
fn dashboard_in_headless_chromium_on_the_sample() {
    let chromedriver = std::env::var("FINOPSIA_TEST_CHROMEDRIVER")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&chromedriver).exists(),
        "{chromedriver} is missing: run the suite with `bash tests/run.sh`, which installs chromium and chromium-driver"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = write_config(tmp.path(), "");
    let mut service = Service::start_with_args(
        &data,
        &cfg,
        &[(
            "RUST_LOG",
            "finopsia=info,finopsia_serve=info,finopsia_ops=info,warn",
        )],
        &["--sample"],
    );
    service.wait_for_log("REST API listening");
    service.wait_for_log("forecasts refreshed");
    let addr = service_addr(&data).expect("state/http.json");
    let login = std::fs::read_to_string(data.join("state/dashboard-login"))
        .expect("the login link in state/dashboard-login");
    let login = login.trim();
    assert!(
        login.starts_with(&format!("http://{addr}/login?token=login_")),
        "{login}"
    );
    let log = service.log();
    assert!(
        !log.contains(login.split("token=").nth(1).unwrap()),
        "the login token is not in the log"
    );
    let artifacts = repo().join("target/test-artifacts/dashboard");
    let _ = std::fs::remove_dir_all(&artifacts);
    let config = serde_json::json!({
        "base": format!("http://{addr}"),
        "login_url": login,
        "read_token": token(&data, "read"),
        "ingest_token": token(&data, "ingest"),
        "finopsia": bin(),
        "data_dir": data,
        "artifacts": artifacts,
        "chromedriver": chromedriver,
        "uplot": repo().join("pipeline/serve/web/vendor/uPlot.iife.min.js"),
    });
    let out = Command::new(python())
        .arg(repo().join("tests/python/dashboard_check.py"))
        .arg(config.to_string())
        .env("SE_OFFLINE", "true")
        .output()
        .expect("run the browser checks");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        panic!(
            "browser checks failed:\n{text}\n--- service log:\n{}",
            service.log()
        );
    }
    assert!(text.contains("dashboard: all checks passed"), "{text}");
    let shots: Vec<_> = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    for view in [
        "cashflow",
        "forecast-org_balance",
        "recurring",
        "transactions",
        "quarantine",
        "health",
    ] {
        for size in ["desktop", "phone"] {
            let found = shots.iter().any(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.starts_with(view) && name.ends_with(&format!("-{size}.png"))
            });
            assert!(
                found,
                "no {size} screenshot of {view} in {}",
                artifacts.display()
            );
        }
    }
    for p in &shots {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5000,
            "{}",
            p.display()
        );
    }
    // The service still serves the API after the browser is gone.
    wait_for("the service answers", Duration::from_secs(10), || {
        common::http::get(&addr, "/health", None).status == 200
    });
    service.stop();
}

/// The embedded uPlot is byte for byte the file of the npm release pinned
/// in `uplot.lock`, whose tarball matches the pinned integrity hash.
#[test]
fn embedded_uplot_is_the_pinned_npm_package() {
    let vendor = repo().join("pipeline/serve/web/vendor");
    let lock = std::fs::read_to_string(vendor.join("uplot.lock")).unwrap();
    let field = |k: &str| {
        lock.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("uplot.lock has no {k}"))
            .to_string()
    };
    let (version, integrity) = (field("version"), field("integrity"));
    let tmp = tempfile::tempdir().unwrap();
    let npm = Command::new("npm")
        .args(["pack", "--silent", &format!("uplot@{version}")])
        .current_dir(tmp.path())
        .output()
        .expect("npm (tests/run.sh installs it)");
    assert!(
        npm.status.success(),
        "npm pack: {}",
        String::from_utf8_lossy(&npm.stderr)
    );
    let tgz = tmp.path().join(format!("uplot-{version}.tgz"));
    let digest = Command::new(python())
        .args([
            "-c",
            "import base64, hashlib, sys; print('sha512-' + base64.b64encode(hashlib.sha512(open(sys.argv[1], 'rb').read()).digest()).decode())",
        ])
        .arg(&tgz)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&digest.stdout).trim(),
        integrity,
        "the npm tarball's integrity"
    );
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&tgz)
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(tar.success());
    for (packaged, embedded) in [
        ("dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
        ("dist/uPlot.min.css", "uPlot.min.css"),
        ("LICENSE", "uPlot.LICENSE"),
    ] {
        let want = std::fs::read(tmp.path().join("package").join(packaged)).unwrap();
        let got = std::fs::read(vendor.join(embedded)).unwrap();
        assert!(
            want == got,
            "{embedded} differs from {packaged} of uplot {version}"
        );
    }
}
