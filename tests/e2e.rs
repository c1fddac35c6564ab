//! End to end: a file with every kind of bad row, exact sums, idempotent
//! re-import, and cashflow_daily equal to a batch GROUP BY over transactions.

mod common;

use std::collections::BTreeMap;

use common::*;

const HEADER: &str = "transaction_id,account_id,amount,currency,direction,description,transaction_date,posted_at,category,counterparty";

/// (row, Some(reason) if it must be quarantined)
fn rows() -> Vec<(String, Option<&'static str>)> {
    let r = |s: &str, reason: Option<&'static str>| (s.to_string(), reason);
    vec![
        r("t01,acc-1,1250.50,USD,inflow,Invoice 1001,2024-03-01,,Sales,ACME", None),
        r("t02,acc-1,  99.99 ,usd,OUTFLOW,\"Office, supplies\",2024-03-01T09:30:00+01:00,2024-03-02,Supplies,", None),
        r("t03,acc-2,0.10,EUR,Inflow,\"multi\nline \"\"memo\"\"\",2024-03-02,,,", None),
        r("t04,acc-2,1500,JPY,outflow,,2024-03-02,,Travel,", None),
        r("t05,acc-3,12.345,KWD,inflow,Dinar,2024-03-03T23:59:59Z,,,", None),
        r("t06,acc-3,0.001,kwd,outflow,Fee,2024-03-03,,Fees,", None),
        // At limits.max_amount_minor (10^12 minor units) and back.
        r("t07,acc-1,10000000000.00,USD,inflow,Huge,2024-03-04,,,", None),
        r("t07b,acc-1,10000000000.00,USD,outflow,Huge back,2024-03-04,,,", None),
        r("t08,acc-1,1.00,USD,inflow,extra field,2024-03-01,,,,EXTRA", Some("wrong_field_count")),
        r("t09,acc-1,1.00,USD", Some("wrong_field_count")),
        r("t10,acc-1,1\"0,USD,inflow,x,2024-03-01,,,", Some("unparsable_line")),
        r("t11,,1.00,USD,inflow,x,2024-03-01,,,", Some("missing_field")),
        r("t12,acc-1,\"1,000.00\",USD,inflow,x,2024-03-01,,,", Some("invalid_amount")),
        r("t13,acc-1,-5.00,USD,inflow,x,2024-03-01,,,", Some("invalid_amount")),
        r("t14,acc-1,1.001,USD,inflow,x,2024-03-01,,,", Some("amount_precision")),
        r("t15,acc-1,5.5,JPY,inflow,x,2024-03-01,,,", Some("amount_precision")),
        r("t16,acc-1,92233720368547758.08,USD,inflow,x,2024-03-01,,,", Some("amount_out_of_range")),
        r("t17,acc-1,1.00,XYZ,inflow,x,2024-03-01,,,", Some("invalid_currency")),
        r("t18,acc-1,1.00,USD,refund,x,2024-03-01,,,", Some("invalid_direction")),
        r("t19,acc-1,1.00,USD,inflow,x,03/01/2024,,,", Some("invalid_date")),
        r("t20,acc-1,1.00,USD,inflow,x,2024-03-01,yesterday,,", Some("invalid_posted_at")),
        r("t01,acc-1,1250.50,USD,inflow,Invoice 1001,2024-03-01,,Sales,ACME", None), // identical: duplicate
        r("t02,acc-1,99.98,USD,outflow,Office supplies,2024-03-01,,Supplies,", Some("conflicting_duplicate")),
    ]
}

fn write_input(dir: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend_from_slice(HEADER.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    for (row, _) in rows() {
        bytes.extend_from_slice(row.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    // invalid UTF-8 inside a field
    bytes.extend_from_slice(b"t21,acc-1,1.00,USD,inflow,caf\xe9,2024-03-01,,,\r\n");
    let path = dir.join("bad-rows.csv");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn import_quarantines_each_bad_row_and_keeps_exact_sums() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = write_input(tmp.path());
    let report = import(&data, &[input.to_str().unwrap()]);

    let expected_bad: Vec<&str> = rows()
        .iter()
        .filter_map(|(_, r)| *r)
        .chain(["invalid_utf8"])
        .collect();
    let valid = rows().iter().filter(|(_, r)| r.is_none()).count() as i64 - 1; // one identical duplicate
    assert_eq!(report["accepted"].as_i64(), Some(valid), "{report}");
    assert_eq!(
        report["quarantined"].as_i64(),
        Some(expected_bad.len() as i64),
        "{report}"
    );
    assert_eq!(report["duplicates"].as_i64(), Some(1), "{report}");

    // Every bad row is in quarantine with its reason, line and raw text.
    let q = query(
        &data,
        "SELECT reason, line, raw, file FROM quarantine ORDER BY line",
    );
    let mut got: Vec<&str> = q.iter().map(|r| text(r, "reason")).collect();
    let mut want = expected_bad.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let wrong = q
        .iter()
        .find(|r| text(r, "raw").starts_with("t08,"))
        .expect("t08 quarantined");
    assert_eq!(
        int(wrong, "line"),
        11,
        "line numbers count the multi-line record (t03 spans lines 4-5)"
    );
    assert!(text(wrong, "file").ends_with("bad-rows.csv"));
    let conflict = q
        .iter()
        .find(|r| text(r, "reason") == "conflicting_duplicate")
        .unwrap();
    assert!(
        text(conflict, "raw").contains("99.98"),
        "the second version is quarantined"
    );

    // Exact sums per currency, computed here from the input text.
    let mut want_sums: BTreeMap<String, i128> = BTreeMap::new();
    for (row, reason) in rows().iter().take(8) {
        assert!(reason.is_none());
        let f: Vec<&str> = row.split(',').collect();
        let (amount, cur, dir) = match f[0] {
            "t02" => ("99.99", "USD", "outflow"),
            "t03" => ("0.10", "EUR", "inflow"),
            _ => (f[2].trim(), f[3], f[4]),
        };
        let cur = cur.to_uppercase();
        let exp = match cur.as_str() {
            "JPY" => 0,
            "KWD" => 3,
            _ => 2,
        };
        let v = i128::from(minor(amount, exp));
        *want_sums.entry(cur).or_default() += if dir.eq_ignore_ascii_case("inflow") {
            v
        } else {
            -v
        };
    }
    let sums = query(&data, "SELECT currency, SUM(amount_minor) AS total, COUNT(*) AS n FROM transactions GROUP BY currency ORDER BY currency");
    let got_sums: BTreeMap<String, i128> = sums
        .iter()
        .map(|r| (text(r, "currency").to_string(), i128::from(int(r, "total"))))
        .collect();
    assert_eq!(got_sums, want_sums);
    let t02 = query(&data, "SELECT description, amount_minor, event_time FROM transactions WHERE transaction_id = 't02'");
    assert_eq!(text(&t02[0], "description"), "Office, supplies");
    assert_eq!(
        int(&t02[0], "amount_minor"),
        -9999,
        "the first version stays"
    );
    let t03 = query(
        &data,
        "SELECT description FROM transactions WHERE transaction_id = 't03'",
    );
    assert_eq!(text(&t03[0], "description"), "multi\nline \"memo\"");

    // Re-import: nothing new, nothing doubled, quarantine unchanged.
    let again = import(&data, &[input.to_str().unwrap()]);
    assert_eq!(again["accepted"].as_i64(), Some(0), "{again}");
    assert_eq!(again["duplicates"].as_i64(), Some(valid + 1), "{again}");
    let n = query(&data, "SELECT COUNT(*) AS n FROM transactions");
    assert_eq!(int(&n[0], "n"), valid);
    let nq = query(&data, "SELECT COUNT(*) AS n FROM quarantine");
    assert_eq!(int(&nq[0], "n"), expected_bad.len() as i64);

    assert_windows_match_batch(&data);
}

#[test]
fn seed_sample_imports_with_preset_and_shuffled_order_aggregates_completely() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipeline/core/data/finopsia-seed-transactions.csv"
    );
    let text_in = std::fs::read_to_string(sample).unwrap();
    let mut lines: Vec<&str> = text_in.lines().collect();
    let header = lines.remove(0);
    // Deterministic shuffle: event time order is destroyed.
    let mut state = 12345u64;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lines.swap(i, (state >> 33) as usize % (i + 1));
    }
    let shuffled = tmp.path().join("shuffled.csv");
    std::fs::write(&shuffled, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let report = import(
        &data,
        &[
            "--preset",
            "finopsia-seed",
            "--source",
            "seed",
            shuffled.to_str().unwrap(),
        ],
    );
    assert_eq!(
        report["accepted"].as_i64(),
        Some(lines.len() as i64),
        "{report}"
    );
    assert_eq!(report["quarantined"].as_i64(), Some(0));

    // NGN sums equal the sample's amounts, computed here.
    let mut want = 0i64;
    for l in &lines {
        let f: Vec<&str> = l.split(',').collect();
        let v = minor(f[4], 2);
        want += if f[5] == "inflow" { v } else { -v };
    }
    let got = query(
        &data,
        "SELECT currency, SUM(amount_minor) AS total FROM transactions GROUP BY currency",
    );
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0], "currency"), "NGN");
    assert_eq!(int(&got[0], "total"), want);
    assert_windows_match_batch(&data);
}

#[test]
fn io_and_config_errors_exit_nonzero_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let out = finopsia(&["import", "--data-dir", d, "/nonexistent/file.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.csv"));

    let bad_header = tmp.path().join("h.csv");
    std::fs::write(&bad_header, "id,amount\n1,2\n").unwrap();
    let out = finopsia(&["import", "--data-dir", d, bad_header.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lacks required column"));

    let out = finopsia(&[
        "import",
        "--data-dir",
        d,
        "--preset",
        "nope",
        bad_header.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown preset"));

    // `query` on a store: SQL errors and writes are refused with a message.
    let ok_file = tmp.path().join("ok.csv");
    std::fs::write(&ok_file, "transaction_id,account_id,amount,currency,direction,description,transaction_date\na,b,1.00,USD,inflow,x,2024-01-01\n").unwrap();
    import(&data, &[ok_file.to_str().unwrap()]);
    for (sql, expect) in [
        ("SELEC 1", "SELEC"),
        ("DROP TABLE transactions", "DDL"),
        ("INSERT INTO transactions SELECT * FROM transactions", "DML"),
    ] {
        let out = finopsia(&["query", "--data-dir", d, sql]);
        assert!(!out.status.success(), "{sql}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        int(
            &query(&data, "SELECT COUNT(*) AS n FROM transactions")[0],
            "n"
        ),
        1
    );
}

#[test]
fn ndjson_import() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let f = tmp.path().join("feed.ndjson");
    std::fs::write(
        &f,
        "{\"transaction_id\":\"n1\",\"account_id\":\"a\",\"amount\":\"10.50\",\"currency\":\"EUR\",\"direction\":\"inflow\",\"description\":\"x\",\"transaction_date\":\"2024-01-01\"}\n\
         {\"transaction_id\":\"n2\",\"account_id\":\"a\",\"amount\":0.25,\"currency\":\"EUR\",\"direction\":\"outflow\",\"description\":\"y\",\"transaction_date\":\"2024-01-01T10:00:00Z\"}\n\
         {broken\n",
    )
    .unwrap();
    let r = import(&data, &[f.to_str().unwrap()]);
    assert_eq!(
        (r["accepted"].as_i64(), r["quarantined"].as_i64()),
        (Some(2), Some(1))
    );
    let s = query(&data, "SELECT SUM(amount_minor) AS s FROM transactions");
    assert_eq!(int(&s[0], "s"), 1025);

    // An extension that says nothing needs --format.
    let txt = tmp.path().join("feed.txt");
    std::fs::write(&txt, "{\"transaction_id\":\"n3\",\"account_id\":\"a\",\"amount\":\"1\",\"currency\":\"JPY\",\"direction\":\"inflow\",\"transaction_date\":\"2024-01-02\"}\n").unwrap();
    let out = finopsia(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        txt.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    let r = import(&data, &["--format", "ndjson", txt.to_str().unwrap()]);
    assert_eq!(r["accepted"].as_i64(), Some(1));
}

#[test]
fn adding_a_query_file_creates_and_backfills_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = tmp.path().join("first.csv");
    let header =
        "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";
    std::fs::write(
        &first,
        format!(
            "{header}a1,acc,1.00,USD,inflow,x,2024-01-01\na2,acc,2.00,EUR,outflow,x,2024-01-09\n"
        ),
    )
    .unwrap();
    import(&data, &[first.to_str().unwrap()]);

    let queries = queries_dir(
        tmp.path(),
        &[(
            "weekly_by_currency.sql",
            "INSERT INTO weekly_by_currency SELECT tumble(interval '7 days') AS window, currency, SUM(amount_minor) AS net_minor, COUNT(*) AS n FROM transactions GROUP BY window, currency",
        )],
    );
    let second = tmp.path().join("second.csv");
    std::fs::write(
        &second,
        format!("{header}b1,acc,4.00,USD,inflow,x,2024-01-02\n"),
    )
    .unwrap();
    import(
        &data,
        &[
            "--queries",
            queries.to_str().unwrap(),
            second.to_str().unwrap(),
        ],
    );

    let streamed = query(&data, "SELECT CAST(window_start AS VARCHAR) AS w, currency, net_minor, n FROM weekly_by_currency ORDER BY w, currency");
    let batch = query(
        &data,
        "SELECT CAST(date_bin(INTERVAL '7 days', event_time) AS VARCHAR) AS w, currency, SUM(amount_minor) AS net_minor, COUNT(*) AS n \
         FROM transactions GROUP BY 1, 2 ORDER BY w, currency",
    );
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert_eq!(
        streamed, batch,
        "history before the query existed is included"
    );
    assert_windows_match_batch(&data);
}

#[test]
fn losing_the_state_directory_rebuilds_windows_without_double_counting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let header =
        "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";
    let a = tmp.path().join("a.csv");
    std::fs::write(
        &a,
        format!(
            "{header}x1,acc,1.00,USD,inflow,x,2024-01-01\nx2,acc,2.00,USD,inflow,x,2024-01-02\n"
        ),
    )
    .unwrap();
    import(&data, &[a.to_str().unwrap()]);
    std::fs::remove_dir_all(data.join("state")).unwrap();
    // A late record for an already emitted day after the state is gone.
    let b = tmp.path().join("b.csv");
    std::fs::write(&b, format!("{header}x3,acc,4.00,USD,inflow,x,2024-01-01\n")).unwrap();
    import(&data, &[b.to_str().unwrap()]);
    assert_windows_match_batch(&data);
    let d = query(&data, "SELECT net_minor FROM cashflow_daily WHERE CAST(window_start AS VARCHAR) LIKE '2024-01-01%'");
    assert_eq!(int(&d[0], "net_minor"), 500);
}

#[test]
fn configured_preset_maps_columns_dates_currency_and_minor_units() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("bank.csv");
    std::fs::write(
        &input,
        "Reference;IBAN;Amount (cents);Type;Text;Booking date\n"
            .replace(';', ",")
            + "r1,DE01,1050,INFLOW,Salary,31.01.2024\nr2,DE01,99,outflow,Fee,01.02.2024\nr3,DE01,1.5,outflow,bad,01.02.2024\n",
    )
    .unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/finopsia.example.toml");
    let out = ok(&[
        "--config",
        config,
        "import",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
        "--preset",
        "mybank",
        input.to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (r["accepted"].as_i64(), r["quarantined"].as_i64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let rows = query(&data, "SELECT transaction_id, account_id, amount_minor, currency, CAST(event_time AS VARCHAR) AS t FROM transactions ORDER BY transaction_id");
    assert_eq!(int(&rows[0], "amount_minor"), 1050);
    assert_eq!(text(&rows[0], "currency"), "EUR");
    assert_eq!(text(&rows[0], "account_id"), "DE01");
    assert!(text(&rows[0], "t").starts_with("2024-01-31"));
    assert_eq!(int(&rows[1], "amount_minor"), -99);
    let q = query(&data, "SELECT reason FROM quarantine");
    assert_eq!(
        text(&q[0], "reason"),
        "invalid_amount",
        "minor units are integers"
    );
}
