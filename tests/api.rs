//! The REST API of `finopsia run` on the public sample: tokens and roles on
//! every endpoint (no token 401, wrong role 403, revoked 401, no token in
//! any log line), cursor paging that returns every transaction exactly
//! once, filters that agree with SQL, bad input answered 4xx in one JSON
//! shape, a category correction stored in `corrections`, window rows that
//! agree with SQL, the OpenAPI document, probes and metrics.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::http::{enc, get, post_json, request, service_addr};
use common::service::*;
use common::*;

struct Tokens {
    read: String,
    ingest: String,
    admin: String,
    revoked: String,
}

fn create(data: &std::path::Path, role: &str) -> String {
    let out = ok(&[
        "token",
        "create",
        "--role",
        role,
        "--name",
        &format!("test {role}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {out:?}");
    lines[0].to_string()
}

fn tokens(data: &std::path::Path) -> Tokens {
    let t = Tokens {
        read: create(data, "read"),
        ingest: create(data, "ingest"),
        admin: create(data, "admin"),
        revoked: create(data, "read"),
    };
    let list = ok(&[
        "token",
        "list",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let list: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert!(!list.to_string().contains("fin_"), "list shows no token");
    let id = list[3]["id"].as_str().unwrap().to_string();
    ok(&["token", "revoke", &id, "--data-dir", data.to_str().unwrap()]);
    t
}

#[test]
fn rest_api_on_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = write_config(
        tmp.path(),
        "[http]\nmax_body_bytes = 4096\nmax_page_size = 500\ningest_rate = 1.0\ningest_burst = 30\n",
    );
    let t = tokens(&data);
    let mut service = Service::start(
        &data,
        &cfg,
        &[
            ("FINOPSIA__FORECAST__REFRESH_INTERVAL", "0"),
            ("RUST_LOG", "debug,h2=info,hyper=info"),
        ],
    );
    service.wait_for_log("REST API listening");
    let addr = service_addr(&data).expect("state/http.json");
    let csv: String = (0..250)
        .map(|i| {
            format!(
                "t{i},acc{},{}.{:02},{},{},Payment {i} to Vendor_{}%,2025-0{}-{:02}T10:00:00Z\n",
                i % 3,
                (i * 37) % 900 + 1,
                i % 100,
                if i % 5 == 0 { "USD" } else { "NGN" },
                if i % 2 == 0 { "inflow" } else { "outflow" },
                i % 7,
                1 + i % 6,
                1 + i % 28
            )
        })
        .collect();
    drop_file(
        &data.join("inbox"),
        "a.csv",
        &format!("transaction_id,account_id,amount,currency,direction,description,transaction_date\n{csv}"),
    );
    wait_for("the file committed", Duration::from_secs(60), || {
        count(&data, "SELECT COUNT(*) AS n FROM transactions") == 250
    });
    // The service publishes its snapshot after the commit; the API reads it.
    wait_for("the API sees the records", Duration::from_secs(30), || {
        get(&addr, "/api/v1/transactions?limit=1", Some(&t.read)).status == 200
            && get(&addr, "/api/v1/transactions?limit=500", Some(&t.read)).json()["items"]
                .as_array()
                .unwrap()
                .len()
                == 250
    });

    // --- auth on every operation of the document
    let doc = get(&addr, "/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/windows/cashflow_daily"));
    let mut checked = 0;
    for (path, item) in paths {
        if !path.starts_with("/api/") {
            continue;
        }
        let concrete = path
            .replace("{source}", "import")
            .replace("{transaction_id}", "t1")
            .replace("{id}", "x")
            .replace("{table}", "cashflow_daily")
            .replace("{series_id}", "s")
            .replace("{version}", "v1");
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let body = (m == "POST").then_some(b"{}".as_ref());
            let h = [("Content-Type", "application/json")];
            let r = request(&addr, &m, &concrete, &h, body);
            assert_eq!(
                r.status,
                401,
                "{m} {concrete} without a token: {}",
                r.text()
            );
            assert_eq!(r.code(), "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            let auth = format!("Bearer {}", t.revoked);
            let h = [
                ("Content-Type", "application/json"),
                ("Authorization", auth.as_str()),
            ];
            let r = request(&addr, &m, &concrete, &h, body);
            assert_eq!(r.status, 401, "{m} {concrete} with a revoked token");
            if m == "POST" {
                let auth = format!("Bearer {}", t.read);
                let h = [
                    ("Content-Type", "application/json"),
                    ("Authorization", auth.as_str()),
                ];
                let r = request(&addr, &m, &concrete, &h, body);
                assert_eq!(r.status, 403, "{m} {concrete} with a read token");
                assert_eq!(r.code(), "forbidden");
            } else {
                let r = get(&addr, &concrete, Some(&t.read));
                assert!(
                    r.status == 200 || r.status == 404,
                    "{m} {concrete} with a read token: {} {}",
                    r.status,
                    r.text()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} operations checked");
    let r = post_json(&addr, "/api/v1/models/v1/register", Some(&t.ingest), "{}");
    assert_eq!(r.status, 403, "register needs admin");
    let r = post_json(&addr, "/api/v1/models/nope/register", Some(&t.admin), "{}");
    assert_eq!(r.status, 404, "{}", r.text());

    // --- paging: every transaction exactly once, in a stable order, while
    // ingestion goes on
    let live = {
        let (addr, token) = (addr.clone(), t.admin.clone());
        std::thread::spawn(move || {
            for k in 0..10 {
                // 12 records stay under this test's 4 KiB body limit.
                let records: Vec<String> = (0..12)
                    .map(|j| format!(
                        "{{\"transaction_id\": \"live{k}-{j}\", \"account_id\": \"live\", \"amount\": \"{j}.00\", \"currency\": \"EUR\", \"direction\": \"inflow\", \"description\": \"live\", \"transaction_date\": \"2025-0{}-{:02}T09:00:00Z\"}}",
                        1 + (k + j) % 6,
                        1 + j % 28
                    ))
                    .collect();
                let r = post_json(
                    &addr,
                    "/api/v1/ingest",
                    Some(&token),
                    &format!("[{}]", records.join(",")),
                );
                assert_eq!(r.status, 200, "{}", r.text());
            }
        })
    };
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/transactions?limit=17&cursor={c}"),
            None => "/api/v1/transactions?limit=17".to_string(),
        };
        let r = get(&addr, &path, Some(&t.read));
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        for item in page["items"].as_array().unwrap() {
            let key = (
                item["source"].as_str().unwrap().to_string(),
                item["transaction_id"].as_str().unwrap().to_string(),
            );
            assert!(seen.insert(key.clone()), "{key:?} twice");
            order.push((item["event_time"].as_str().unwrap().to_string(), key));
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    live.join().unwrap();
    let from_inbox = seen.iter().filter(|(s, _)| s == "inbox").count();
    assert_eq!(
        from_inbox, 250,
        "every record stored before paging began, once"
    );
    assert!(pages >= 15);
    eprintln!(
        "paged {} transactions in {pages} pages while 120 were ingested",
        seen.len()
    );
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "event time, source, transaction id");

    // --- filters agree with SQL; money exact
    let sql = count(
        &data,
        "SELECT COUNT(*) AS n FROM transactions WHERE account_id = 'acc1' AND currency = 'NGN' \
         AND event_time >= '2025-02-01T00:00:00Z' AND event_time < '2025-05-01T00:00:00Z' AND amount_minor <= -10000",
    );
    let r = get(
        &addr,
        "/api/v1/transactions?account=acc1&currency=NGN&from=2025-02-01&to=2025-05-01&max_amount=-10000&limit=500",
        Some(&t.read),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(sql > 0);
    assert_eq!(items.len() as i64, sql);
    for i in &items {
        let minor = i["amount_minor"].as_i64().unwrap();
        assert_eq!(
            common::minor(i["amount"].as_str().unwrap(), 2),
            minor,
            "amount text is exact: {i}"
        );
        assert_eq!(i["account_id"], "acc1");
    }
    // Text search takes % and _ literally.
    let r = get(
        &addr,
        &format!("/api/v1/transactions?q={}&limit=500", enc("vendor_3%")),
        Some(&t.read),
    );
    let n = r.json()["items"].as_array().unwrap().len() as i64;
    assert_eq!(
        n,
        count(
            &data,
            "SELECT COUNT(*) AS n FROM transactions WHERE description LIKE '%Vendor\\_3\\%%' ESCAPE '\\'"
        )
    );
    assert!(n > 0);
    let one = get(&addr, "/api/v1/transactions/import/t5", Some(&t.read));
    assert_eq!(one.status, 404, "the inbox source is named inbox");
    let one = get(&addr, "/api/v1/transactions/inbox/t5", Some(&t.read));
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["transaction_id"], "t5");

    // --- bad input: 4xx, one JSON shape, never a 500
    for (path, status, code) in [
        ("/api/v1/transactions?limit=0", 400, "invalid_parameter"),
        ("/api/v1/transactions?limit=501", 400, "page_too_large"),
        ("/api/v1/transactions?limit=-1", 400, "invalid_parameter"),
        ("/api/v1/transactions?nope=1", 400, "invalid_parameter"),
        ("/api/v1/transactions?cursor=zzz", 400, "invalid_cursor"),
        (
            "/api/v1/transactions?from=yesterday",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/transactions?needs_review=maybe",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/windows/cashflow_daily?nope=1",
            400,
            "unknown_parameter",
        ),
        ("/api/v1/windows/nope", 404, "not_found"),
        ("/api/v1/nothing", 404, "not_found"),
    ] {
        let r = get(&addr, path, Some(&t.read));
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.code(), code, "{path}");
    }
    let path = "/api/v1/transactions/inbox/t5/category";
    let r = post_json(&addr, path, Some(&t.ingest), "{\"category\": ");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let r = post_json(&addr, path, Some(&t.ingest), "{\"category\": 5}");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let big = format!("{{\"category\": \"{}\"}}", "x".repeat(5000));
    let r = post_json(&addr, path, Some(&t.ingest), &big);
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
    let r = post_json(
        &addr,
        "/api/v1/transactions/inbox/nope/category",
        Some(&t.ingest),
        "{\"category\": \"Rent\"}",
    );
    assert_eq!(r.status, 404);

    // --- a correction through the API is stored in `corrections`
    let r = post_json(
        &addr,
        path,
        Some(&t.ingest),
        "{\"category\": \"Office Rent\", \"note\": \"from the API\"}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["category"], "Office Rent");
    let rows = query(
        &data,
        "SELECT category, note FROM corrections WHERE source = 'inbox' AND transaction_id = 't5'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(text(&rows[0], "category"), "Office Rent");

    // --- ingest: every record's fate, answered after the commit
    let body = r#"[
        {"transaction_id": "h1", "account_id": "acc9", "amount": "10.50", "currency": "USD", "direction": "inflow", "description": "api one", "transaction_date": "2025-03-01"},
        {"transaction_id": "h2", "account_id": "acc9", "amount": 1234567890.12, "currency": "USD", "direction": "outflow", "description": "api two", "transaction_date": "2025-03-02"},
        {"transaction_id": "h1", "account_id": "acc9", "amount": "10.50", "currency": "USD", "direction": "inflow", "description": "api one", "transaction_date": "2025-03-01"},
        {"transaction_id": "h3", "account_id": "acc9", "amount": "ten", "currency": "USD", "direction": "inflow", "description": "bad", "transaction_date": "2025-03-03"},
        {"transaction_id": "h1", "account_id": "acc9", "amount": "99.00", "currency": "USD", "direction": "inflow", "description": "changed", "transaction_date": "2025-03-01"}
    ]"#;
    let auth = format!("Bearer {}", t.ingest);
    let h = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "batch-1"),
    ];
    let r = request(&addr, "POST", "/api/v1/ingest", &h, Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let fates: Vec<(u64, String)> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["position"].as_u64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        fates,
        vec![
            (0, "accepted".into()),
            (1, "accepted".into()),
            (2, "duplicate".into()),
            (3, "quarantined".into()),
            (4, "quarantined".into()),
        ],
        "{first}"
    );
    assert_eq!(first["results"][3]["reason"], "invalid_amount");
    assert_eq!(first["results"][4]["reason"], "conflicting_duplicate");
    assert_eq!(
        (first["accepted"].clone(), first["duplicates"].clone()),
        (2.into(), 1.into())
    );
    let big = query(
        &data,
        "SELECT amount_minor FROM transactions WHERE transaction_id = 'h2'",
    );
    assert_eq!(int(&big[0], "amount_minor"), -123456789012, "every digit");
    // The same key replays the first answer; without a key the records are duplicates.
    let r = request(&addr, "POST", "/api/v1/ingest", &h, Some(body.as_bytes()));
    assert_eq!(r.header("idempotency-replayed"), Some("true"));
    assert_eq!(r.json(), first);
    let r = post_json(&addr, "/api/v1/ingest", Some(&t.ingest), body);
    assert_eq!(r.json()["duplicates"], 3, "{}", r.text());
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM transactions WHERE account_id = 'acc9'"
        ),
        2
    );
    // NDJSON and CSV, source named by the request.
    let r = request(
        &addr,
        "POST",
        "/api/v1/ingest?source=shop",
        &[("Content-Type", "application/x-ndjson"), ("Authorization", auth.as_str())],
        Some(b"{\"transaction_id\": \"s1\", \"account_id\": \"a\", \"amount\": \"1\", \"currency\": \"JPY\", \"direction\": \"inflow\", \"description\": \"x\", \"transaction_date\": \"2025-01-01\"}\nnot json\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][1]["position"], 2);
    assert_eq!(r.json()["source"], "shop");
    let r = request(
        &addr,
        "POST",
        "/api/v1/ingest?format=csv",
        &[("Authorization", auth.as_str())],
        Some(b"transaction_id,account_id,amount,currency,direction,description,transaction_date\nc1,a,1.00,EUR,inflow,x,2025-01-01\n"),
    );
    assert_eq!(r.json()["accepted"], 1, "{}", r.text());
    let r = request(
        &addr,
        "POST",
        "/api/v1/ingest",
        &[
            ("Content-Type", "text/plain"),
            ("Authorization", auth.as_str()),
        ],
        Some(b"x"),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    let r = post_json(
        &addr,
        "/api/v1/ingest",
        Some(&t.ingest),
        "{\"not\": \"an array\"}",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));

    // --- re-submit the quarantined record, fixed
    let r = get(
        &addr,
        "/api/v1/quarantine?source=http&reason=invalid_amount",
        Some(&t.read),
    );
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", r.text());
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert!(items[0]["raw"].as_str().unwrap().contains("\"ten\""));
    let r = post_json(
        &addr,
        &format!("/api/v1/quarantine/{id}/resubmit"),
        Some(&t.ingest),
        r#"{"record": {"transaction_id": "h3", "account_id": "acc9", "amount": "10", "currency": "USD", "direction": "inflow", "description": "fixed", "transaction_date": "2025-03-03"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resolved"], true);
    assert_eq!(count(&data, "SELECT COUNT(*) AS n FROM transactions WHERE source = 'http' AND transaction_id = 'h3'"), 1);
    let r = get(
        &addr,
        "/api/v1/quarantine?source=http&reason=invalid_amount",
        Some(&t.read),
    );
    assert_eq!(
        r.json()["items"].as_array().unwrap().len(),
        0,
        "no longer open"
    );
    let r = get(&addr, &format!("/api/v1/quarantine/{id}"), Some(&t.read));
    assert_eq!(r.json()["resolved"], true);

    // --- rate limit per token: 429 with Retry-After once the burst is spent
    let limited = create(&data, "ingest");
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = post_json(&addr, "/api/v1/ingest?format=xml", Some(&limited), "[]");
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            assert_eq!(r.code(), "rate_limited");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.len() >= 30, "the burst of 30 first: {statuses:?}");

    // --- window rows agree with SQL
    let r = get(&addr, "/api/v1/windows", Some(&t.read));
    assert!(r.json().to_string().contains("cashflow_daily"));
    let mut total = 0i64;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/windows/cashflow_daily?currency=USD&limit=7&cursor={c}"),
            None => "/api/v1/windows/cashflow_daily?currency=USD&limit=7".to_string(),
        };
        let page = get(&addr, &path, Some(&t.read)).json();
        for row in page["items"].as_array().unwrap() {
            assert_eq!(row["currency"], "USD");
            total += row["inflow_minor"].as_i64().unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let sql = query(
        &data,
        "SELECT SUM(amount_minor) AS n FROM transactions WHERE currency = 'USD' AND amount_minor > 0",
    );
    assert_eq!(total, int(&sql[0], "n"));

    // --- probes open on loopback, metrics in the text format
    let r = get(&addr, "/health", None);
    assert_eq!((r.status, r.json()["status"].clone()), (200, "ok".into()));
    let r = get(&addr, "/ready", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let ready = r.json();
    assert!(ready["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kind"] == "source" && c["name"] == "inbox" && c["ready"] == true));
    let r = get(&addr, "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        r.text()
            .contains("finopsia_records_total{source=\"inbox\",outcome=\"accepted\"} 250"),
        "{}",
        r.text()
    );
    promtool_check(&r.text());
    let r = get(&addr, "/api/v1/models", Some(&t.read));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["versions"][0]["active"], true);

    let log_path = service.log_path();
    service.stop();
    let log = std::fs::read_to_string(log_path).unwrap();
    for tok in [&t.read, &t.ingest, &t.admin, &t.revoked, &limited] {
        assert!(!log.contains(tok.as_str()), "a token in the log");
        assert!(!log.contains(&tok[4..]), "a token in the log");
    }
    assert!(log.contains("http request"), "debug request log is on");
}

fn pseudo_random(n: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ (t >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1)
}

/// HTTP ingest beside the inbox and a NATS JetStream source: a request
/// killed with SIGKILL at a random moment and retried with its
/// Idempotency-Key after a restart, three times, while messages are
/// published and files dropped. Every good record of every source is stored
/// once, every bad one quarantined once, the retry's answer covers every
/// record, and the durable consumer has nothing pending.
#[test]
fn ingest_killed_mid_request_beside_inbox_and_nats_then_retried_stores_every_record_once() {
    use common::nats::{consumer_backlog, jetstream, NatsServer};
    let nats = NatsServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let js = rt.block_on(jetstream(&nats.url, "TXNS", &["txns.>"]));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[http]\nmax_body_bytes = 67108864\n[forecast]\nrefresh_interval = \"0\"\n\
             [engine]\nmax_batch_delay = \"100ms\"\n[inbox]\npoll_interval = \"100ms\"\n\
             [sources.orders]\ntype = \"nats\"\nservers = [\"{}\"]\nstream = \"TXNS\"\n\
             subject = \"txns.>\"\nformat = \"ndjson\"\nbatch = 200\nmax_wait = \"200ms\"\nack_wait = \"5s\"\n",
            nats.url
        ),
    );
    let token = create(&data, "ingest");
    let inbox = data.join("inbox");
    let n = 20_000;
    let (mut http_good, mut other_good) = (0usize, 0usize);
    for round in 0..3 {
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            let amount = if i % 97 == 0 {
                "\"oops\"".to_string()
            } else {
                http_good += 1;
                format!("\"{}.{:02}\"", i % 5000, i % 100)
            };
            records.push(format!(
                "{{\"transaction_id\": \"r{round}-{i}\", \"account_id\": \"a{}\", \"amount\": {amount}, \"currency\": \"EUR\", \"direction\": \"outflow\", \"description\": \"item {i}\", \"transaction_date\": \"2025-04-{:02}\"}}",
                i % 4,
                1 + i % 28
            ));
        }
        let body = format!("[{}]", records.join(","));
        let key = format!("round-{round}");
        let mut service = Service::start(&data, &cfg, &[]);
        service.wait_for_log("REST API listening");
        let addr = service_addr(&data).unwrap();
        // NATS messages and an inbox file arrive while the request runs.
        for m in 0..10 {
            let lines: Vec<String> = (0..100)
                .map(|j| {
                    format!(
                        "{{\"transaction_id\":\"n{round}-{m}-{j}\",\"account_id\":\"nats\",\"amount\":\"{j}.50\",\"currency\":\"USD\",\"direction\":\"inflow\",\"description\":\"nats\",\"transaction_date\":\"2025-03-{:02}\"}}",
                        1 + j % 28
                    )
                })
                .collect();
            rt.block_on(async {
                js.publish(format!("txns.{m}"), lines.join("\n").into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            });
            other_good += 100;
        }
        let file: String = (0..300)
            .map(|j| {
                format!(
                    "f{round}-{j},files,{j}.25,USD,inflow,file,2025-02-{:02}\n",
                    1 + j % 28
                )
            })
            .collect();
        drop_file(
            &inbox,
            &format!("f{round}.csv"),
            &format!("transaction_id,account_id,amount,currency,direction,description,transaction_date\n{file}"),
        );
        other_good += 300;
        let (a, b, k, tok) = (addr.clone(), body.clone(), key.clone(), token.clone());
        let sender = std::thread::spawn(move || {
            let auth = format!("Bearer {tok}");
            let h = [
                ("Content-Type", "application/json"),
                ("Authorization", auth.as_str()),
                ("Idempotency-Key", k.as_str()),
            ];
            request(&a, "POST", "/api/v1/ingest", &h, Some(b.as_bytes())).status
        });
        let wait = pseudo_random(1200);
        std::thread::sleep(Duration::from_millis(wait));
        service.kill9();
        let first = sender.join().ok();
        let mut service = Service::start(&data, &cfg, &[]);
        service.wait_for_log("REST API listening");
        let addr = service_addr(&data).unwrap();
        let auth = format!("Bearer {token}");
        let h = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
            ("Idempotency-Key", key.as_str()),
        ];
        let r = request(&addr, "POST", "/api/v1/ingest", &h, Some(body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
        eprintln!(
            "round {round}: killed after {wait} ms (first answer: {first:?}); retry replayed: {}",
            r.header("idempotency-replayed").is_some()
        );
        let answer = r.json();
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), n, "every record answered");
        for (i, res) in results.iter().enumerate() {
            assert_eq!(res["position"], i as u64);
            let status = res["status"].as_str().unwrap();
            if i % 97 == 0 {
                assert_eq!(status, "quarantined", "{res}");
            } else {
                assert!(status == "accepted" || status == "duplicate", "{res}");
            }
        }
        service.stop();
    }
    let expected = (http_good + other_good) as i64;
    let service = Service::start(&data, &cfg, &[]);
    wait_for("every record", Duration::from_secs(120), || {
        count(&data, "SELECT COUNT(*) AS n FROM transactions") >= expected
    });
    wait_for("the consumer to drain", Duration::from_secs(60), || {
        rt.block_on(consumer_backlog(&js, "TXNS", "orders")) == Some((0, 0))
    });
    wait_for("the inbox to empty", Duration::from_secs(60), || {
        std::fs::read_dir(&inbox).unwrap().count() == 0
    });
    service.stop();
    assert_eq!(
        count(&data, "SELECT COUNT(*) AS n FROM transactions"),
        expected
    );
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT source, transaction_id FROM transactions)"
        ),
        expected,
        "nothing stored twice"
    );
    assert_eq!(
        count(
            &data,
            "SELECT COUNT(*) AS n FROM transactions WHERE source = 'http'"
        ),
        http_good as i64
    );
    assert_eq!(
        count(&data, "SELECT COUNT(*) AS n FROM quarantine"),
        (3 * n.div_ceil(97)) as i64,
        "each bad record quarantined once"
    );
}

/// `finopsia token create` killed with SIGKILL at random moments: the token
/// list stays whole (old or new, never torn).
#[test]
fn token_list_survives_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut created = 0;
    for _ in 0..20 {
        let mut child = finopsia_command()
            .args(["token", "create", "--role", "read", "--data-dir"])
            .arg(&data)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(pseudo_random(20_000)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            created += 1;
        }
    }
    let list = ok(&[
        "token",
        "list",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let list: serde_json::Value = serde_json::from_str(list.trim()).expect("whole JSON");
    let n = list.as_array().unwrap().len();
    assert!(n >= created, "{n} listed, {created} reported created");
    assert!(n <= 20);
}

/// schemathesis (PyPI) against the served OpenAPI document, with a token of
/// each role over every operation: no 5xx, and every answer (status, content
/// type, body) as the document says.
#[test]
fn openapi_conformance_with_schemathesis() {
    let st = std::env::var("FINOPSIA_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("FINOPSIA_TEST_SCHEMATHESIS is not set: run the suite with `bash tests/run.sh`, which installs schemathesis into target/pyenv")
    });
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipeline/core/data/finopsia-seed-transactions.csv");
    import(
        &data,
        &[
            "--source",
            "sample",
            "--preset",
            "finopsia-seed",
            sample.to_str().unwrap(),
        ],
    );
    let cfg = write_config(
        tmp.path(),
        "[http]\ningest_burst = 100000\n[forecast]\nrefresh_interval = \"0\"\n",
    );
    let mut service = Service::start(&data, &cfg, &[]);
    service.wait_for_log("REST API listening");
    let addr = service_addr(&data).unwrap();
    for role in ["read", "ingest", "admin"] {
        let token = create(&data, role);
        let out = std::process::Command::new(&st)
            .args([
                "run",
                &format!("http://{addr}/api/v1/openapi.json"),
                "--url",
                &format!("http://{addr}"),
                "--header",
                &format!("Authorization: Bearer {token}"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "12",
                "--seed",
                "7",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(tmp.path())
            .output()
            .expect("run schemathesis");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "schemathesis with a {role} token:\n{text}"
        );
    }
    service.stop();
}
