//! SQL golden tests: each directory under `tests/golden/` has `input.csv`,
//! an optional `query.sql` (a window query added next to the built-in ones;
//! without it the built-in `cashflow_daily` is checked) and `expected.csv`,
//! the target table's rows sorted. `FINOPSIA_BLESS=1 cargo test --test golden`
//! rewrites the expected files; review the diff before committing it.

mod common;

use std::path::Path;

use common::*;

fn target_of(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find("INSERT INTO").expect("INSERT INTO") + "INSERT INTO".len();
    sql[at..].split_whitespace().next().unwrap().to_string()
}

fn run_case(case: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let extra = std::fs::read_to_string(case.join("query.sql")).ok();
    let target = extra
        .as_deref()
        .map_or("cashflow_daily".to_string(), target_of);
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|sql| ("golden.sql", sql.as_str()))
        .collect();
    let queries = queries_dir(tmp.path(), &extra);
    let input = case.join("input.csv");
    import(
        &data,
        &[
            "--queries",
            queries.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    let got = ok(&[
        "query",
        "--format",
        "csv",
        "--data-dir",
        data.to_str().unwrap(),
        &format!("SELECT * FROM {target}"),
    ]);
    // Stable order: header, then rows sorted as text.
    let mut lines: Vec<&str> = got.lines().collect();
    let header = lines.remove(0);
    lines.sort();
    let got = format!("{header}\n{}\n", lines.join("\n"));
    let expected_path = case.join("expected.csv");
    if std::env::var_os("FINOPSIA_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{}: {e}", expected_path.display()))?;
    if got != want {
        return Err(format!(
            "{}:\n--- expected\n{want}\n--- got\n{got}",
            case.display()
        ));
    }
    Ok(())
}

#[test]
fn golden_queries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "golden cases missing");
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
