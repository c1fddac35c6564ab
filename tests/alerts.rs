//! Alerts in `finopsia run`, end to end: a `source_silent` rule fires at
//! start and its notification reaches a local HTTP receiver (webhook, with
//! the HMAC-SHA256 signature verified by `openssl`, an independent
//! implementation) and a Slack-compatible receiver; the service is killed
//! with SIGKILL and restarted without sending it again; data arrives and
//! the resolution is delivered once. A channel whose receiver is down fails
//! on every evaluation without holding up ingestion or the other channels,
//! and its failures are counted in `/metrics` and `alert_deliveries`. An
//! e-mail channel delivers to a real SMTP server (PyPI `aiosmtpd`, STARTTLS
//! required) and the message is read back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::*;
use common::service::*;
use common::webhook::Request;
use common::*;

const HEADER: &str = "transaction_id,account_id,amount,currency,direction,description,transaction_date,posted_at,category,counterparty";
const SECRET: &str = "s3cret-key";

/// A receiver on 127.0.0.1 that records every POST and answers 200.
fn receiver() -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Request>>> = Arc::default();
    let g = got.clone();
    common::webhook::serve(listener, move |r| {
        g.lock().unwrap().push(r.clone());
        (200, "ok".into())
    });
    (base, got)
}

fn at(got: &Arc<Mutex<Vec<Request>>>, path: &str) -> Vec<Request> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

/// `openssl dgst -sha256 -hmac SECRET` of `message`, in hex.
fn openssl_hmac(message: &str) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (bash tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.rsplit(' ').next().unwrap().trim().to_string()
}

fn evaluations(data: &std::path::Path) -> usize {
    job_history(data, Some("alert_evaluation"))
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .count()
}

#[test]
fn firing_and_resolved_are_delivered_once_each_across_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let (base, got) = receiver();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[jobs.alert_evaluation]\nevery = \"1s\"\n\
             [jobs.forecast_refresh]\nenabled = false\n\
             [alerts]\nchannels = [\"hook\", \"chat\", \"down\"]\n\
             [alerts.rules.inbox_quiet]\ntype = \"source_silent\"\nsource = \"inbox\"\nafter = \"1h\"\nseverity = \"critical\"\n\
             [alerts.rules.inbox_quiet.labels]\nteam = \"finance\"\n\
             [channels.hook]\ntype = \"webhook\"\nurl = \"{base}/hook\"\nsecret = \"{SECRET}\"\n\
             [channels.chat]\ntype = \"slack\"\nurl = \"{base}/slack\"\n\
             [channels.down]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{closed}/x\"\nsecret = \"x\"\nattempts = 1\ntimeout = \"1s\"\n"
        ),
    );
    let env = [("RUST_LOG", "finopsia=info,finopsia_ops=info,warn")];

    // 1. Nothing ever came from the inbox: the rule fires at start.
    let service = Service::start(&data, &cfg, &env);
    wait_for("the firing notification", Duration::from_secs(60), || {
        at(&got, "/hook").len() == 1 && at(&got, "/slack").len() == 1
    });
    // Killed once both deliveries are recorded (a kill between a send and
    // its record sends it again, with the same event_id: at least once).
    wait_for("the deliveries recorded", Duration::from_secs(60), || {
        let out = finopsia(&[
            "query",
            "--format",
            "json",
            "--data-dir",
            data.to_str().unwrap(),
            "SELECT COUNT(*) AS n FROM alert_deliveries WHERE ok AND channel IN ('hook', 'chat')",
        ]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()[0]["n"]
                == 2
    });
    service.kill9();

    // 2. Restarted: the alert is still firing, and not sent again.
    let before = evaluations(&data);
    let mut service = Service::start(&data, &cfg, &env);
    service.wait_for_log("watching inbox");
    wait_for(
        "three evaluations after the restart",
        Duration::from_secs(60),
        || evaluations(&data) >= before + 3,
    );
    assert_eq!(at(&got, "/hook").len(), 1, "re-sent after the restart");
    let firing = query(&data, "SELECT alert_id, kind, severity FROM alerts_firing");
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(text(&firing[0], "alert_id"), "inbox_quiet/inbox");

    // 3. Data arrives (the failing channel holds nothing up): resolved.
    drop_file(
        &inbox,
        "a.csv",
        &format!("{HEADER}\na1,acc-1,12.50,NGN,outflow,Paper,2026-03-01,,Office,\n"),
    );
    wait_for("a.csv", Duration::from_secs(60), || {
        data.join("processed/a.csv").exists()
    });
    wait_for("the resolved notification", Duration::from_secs(60), || {
        at(&got, "/hook").len() == 2 && at(&got, "/slack").len() == 2
    });
    let after = evaluations(&data);
    wait_for("two more evaluations", Duration::from_secs(60), || {
        evaluations(&data) >= after + 2
    });
    let addr = service_addr(&data).unwrap();
    let metrics = get(&addr, "/metrics", None).text();
    service.stop();

    // Exactly one firing and one resolved, each signed and with its own id.
    let hook = at(&got, "/hook");
    assert_eq!(hook.len(), 2);
    let bodies: Vec<serde_json::Value> = hook
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[1]["status"], "resolved");
    assert_eq!(bodies[0]["alert_id"], "inbox_quiet/inbox");
    assert_eq!(bodies[0]["severity"], "critical");
    assert_eq!(bodies[0]["type"], "source_silent");
    assert_eq!(bodies[0]["labels"]["team"], "finance");
    assert!(bodies[0]["message"]
        .as_str()
        .unwrap()
        .contains("No data from source inbox ever"));
    assert_ne!(bodies[0]["event_id"], bodies[1]["event_id"]);
    for (r, b) in hook.iter().zip(&bodies) {
        assert_eq!(
            r.headers["x-finopsia-event"],
            b["event_id"].as_str().unwrap()
        );
        let ts = &r.headers["x-finopsia-timestamp"];
        let expected = format!("sha256={}", openssl_hmac(&format!("{ts}.{}", r.body)));
        assert_eq!(r.headers["x-finopsia-signature"], expected, "signature");
    }
    let slack = at(&got, "/slack");
    let texts: Vec<String> = slack
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        texts[0].starts_with("*FIRING [CRITICAL]* inbox_quiet:"),
        "{texts:?}"
    );
    assert!(texts[1].starts_with("*RESOLVED* inbox_quiet:"), "{texts:?}");
    assert!(!slack[0].headers.contains_key("x-finopsia-signature"));

    // The dead channel: failures recorded and counted, never delivered.
    assert!(query(&data, "SELECT * FROM alerts_firing").is_empty());
    let down = query(
        &data,
        "SELECT SUM(CASE WHEN ok THEN 1 ELSE 0 END) AS ok, COUNT(*) AS n FROM alert_deliveries WHERE channel = 'down'",
    );
    assert_eq!(int(&down[0], "ok"), 0);
    assert!(int(&down[0], "n") >= 3, "{down:?}");
    assert!(
        metrics.contains("finopsia_alert_notifications_total{channel=\"down\",outcome=\"failed\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("finopsia_alert_notifications_total{channel=\"hook\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
}

#[test]
fn alert_configuration_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (toml, expect) in [
        (
            "[alerts.rules.x]\ntype = \"source_silent\"\n",
            "alerts.rules.x: source_silent needs source",
        ),
        (
            "[alerts.rules.x]\ntype = \"job_failed\"\nchannels = [\"nope\"]\n",
            "no channel \"nope\"",
        ),
        (
            "[channels.h]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n",
            "channels.h: a webhook channel needs secret",
        ),
        (
            "[alerts.rules.x]\ntype = \"balance_below\"\ncurrency = \"NGN\"\nthreshold = \"ten\"\n",
            "alerts.rules.x.threshold",
        ),
    ] {
        let cfg = write_config(tmp.path(), toml);
        let out = finopsia(&[
            "--config",
            cfg.to_str().unwrap(),
            "job",
            "list",
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expect),
            "{toml}: {err}"
        );
    }
}

/// The aiosmtpd server of `tests/python/smtp_server.py`, killed on drop.
struct Smtp {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        let python = std::env::var("FINOPSIA_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("FINOPSIA_TEST_PYTHON is not set: run the suite with `bash tests/run.sh`, which installs aiosmtpd into target/pyenv")
        });
        let dir = tempfile::tempdir().unwrap();
        common::tls::throwaway_ca(dir.path());
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        let port = common::nats::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smtp_server.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .arg(dir.path().join("mail"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        Smtp { child, port, dir }
    }

    /// Received messages (raw text) with their session facts, in order.
    fn messages(&self) -> Vec<(String, serde_json::Value)> {
        let mail = self.dir.path().join("mail");
        let mut names: Vec<String> = std::fs::read_dir(&mail)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let base = n.trim_end_matches(".json");
                (
                    std::fs::read_to_string(mail.join(format!("{base}.eml"))).unwrap(),
                    serde_json::from_str(&std::fs::read_to_string(mail.join(n)).unwrap()).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_goes_over_starttls_to_a_real_smtp_server() {
    let smtp = Smtp::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[alerts]\nchannels = [\"mail\"]\n\
             [alerts.rules.quiet]\ntype = \"source_silent\"\nsource = \"bank\"\nseverity = \"critical\"\n\
             [channels.mail]\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\n\
             ca_file = \"{}\"\nfrom = \"FinOpsia <alerts@finopsia.test>\"\nto = [\"owner@example.test\", \"cfo@example.test\"]\n",
            smtp.port,
            smtp.dir.path().join("ca.pem").display()
        ),
    );
    let run = || job_run(&cfg, &data, "alert_evaluation");
    run();
    let got = smtp.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let (eml, session) = &got[0];
    assert_eq!(session["tls"], true, "STARTTLS was used");
    assert_eq!(session["mail_from"], "alerts@finopsia.test");
    assert_eq!(
        session["rcpt_tos"],
        serde_json::json!(["owner@example.test", "cfo@example.test"])
    );
    assert!(
        eml.contains("Subject: [FinOpsia] FIRING [CRITICAL] quiet/bank"),
        "{eml}"
    );
    assert!(eml.contains("No data from source bank ever"), "{eml}");
    assert!(eml.contains("Severity: critical"), "{eml}");
    // Still firing at the next evaluation: no second message.
    run();
    assert_eq!(smtp.messages().len(), 1);
    let d = query(&data, "SELECT channel, ok FROM alert_deliveries");
    assert_eq!(d.len(), 1, "{d:?}");
}
