//! Certificates for TLS tests: a throw-away CA (`ca.pem`) and a server
//! certificate for 127.0.0.1 signed by it (`server.pem`, `server.key`),
//! made with `openssl` (tests/run.sh installs it).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `p`.
pub fn throwaway_ca(p: &Path) {
    let days = ["-days", "2"];
    openssl(
        p,
        &[
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
            &days,
            &["-subj", "/CN=finopsia test CA"],
        ]
        .concat(),
    );
    openssl(
        p,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        p.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        p,
        &[
            &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"][..],
            &["-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem"],
            &days,
            &["-extfile", "server.ext"],
        ]
        .concat(),
    );
}
