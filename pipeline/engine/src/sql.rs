//! Loading the pipeline's SQL (`queries/*.sql`) and planning it for micro-batches.
//!
//! Each file holds one `INSERT INTO <table> SELECT …` in Arroyo's streaming
//! dialect. Exactly one query targets `transactions`: the per-record transform
//! from the `incoming` stream (projections, filters, UDFs). Every other query
//! is a windowed aggregate over `transactions` with `tumble(interval '…')` or
//! `hop(interval 'slide', interval 'width')` in its GROUP BY.
//!
//! DataFusion cannot run watermark-driven streaming aggregation, so a window
//! query is rewritten into a *partial* query that DataFusion runs on each
//! micro-batch: the window call becomes `date_bin(slide, event_time)` (a
//! "pane"), and the aggregates (SUM, COUNT, MIN, MAX, all mergeable) are
//! computed per pane and key; a SUM's argument is widened
//! ([`crate::widen`]) so an integer sum cannot wrap. [`crate::window`] merges those partials into
//! window state and emits windows as the watermark passes.

use std::path::Path;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem, SetExpr,
    Statement, TableObject,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{io_err, Error, Result};

/// The built-in queries (the repository's `queries/`), compiled in.
pub const BUILTIN_QUERIES: &[(&str, &str)] = &[
    (
        "transform.sql",
        include_str!("../../../queries/transform.sql"),
    ),
    (
        "cashflow_daily.sql",
        include_str!("../../../queries/cashflow_daily.sql"),
    ),
];

/// Name of the stream the transform query reads.
pub const INCOMING: &str = "incoming";
/// Target of the transform query and source of window queries.
pub const TRANSACTIONS: &str = "transactions";
/// Tables a query may not write.
const RESERVED: &[&str] = &["incoming", "quarantine"];

/// How a partial aggregate merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Sum,
    Count,
    Min,
    Max,
}

#[derive(Debug, Clone)]
pub struct TransformQuery {
    pub file: String,
    /// The SELECT, run with `incoming` registered as the micro-batch.
    pub select_sql: String,
}

#[derive(Debug, Clone)]
pub struct WindowQuery {
    pub file: String,
    /// Output table.
    pub target: String,
    pub width_us: i64,
    pub slide_us: i64,
    /// Per-micro-batch SQL over `transactions`: `__pane`, keys, partial aggregates.
    pub partial_sql: String,
    pub keys: Vec<String>,
    pub aggs: Vec<(String, AggKind)>,
}

#[derive(Debug, Clone)]
pub struct Queries {
    pub transform: TransformQuery,
    pub windows: Vec<WindowQuery>,
}

impl Queries {
    /// Loads every `*.sql` file of a directory (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<Queries> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("sql") {
                let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
                files.push((
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    text,
                ));
            }
        }
        files.sort();
        Self::parse(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    pub fn builtin() -> Result<Queries> {
        Self::parse(BUILTIN_QUERIES.iter().copied())
    }

    pub fn parse<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Queries> {
        let mut transform = None;
        let mut windows: Vec<WindowQuery> = Vec::new();
        for (file, text) in files {
            match parse_query(file, text)? {
                Parsed::Transform(t) => {
                    if transform.is_some() {
                        return Err(qerr(
                            file,
                            "a second query writes `transactions`; only one transform is allowed",
                        ));
                    }
                    transform = Some(t);
                }
                Parsed::Window(w) => {
                    if windows.iter().any(|o| o.target == w.target) {
                        return Err(qerr(
                            file,
                            &format!("table {} is written by two queries", w.target),
                        ));
                    }
                    windows.push(w);
                }
            }
        }
        let transform = transform.ok_or_else(|| Error::Query {
            file: "queries".into(),
            message:
                "no query writes `transactions` (INSERT INTO transactions SELECT … FROM incoming)"
                    .into(),
        })?;
        Ok(Queries { transform, windows })
    }
}

enum Parsed {
    Transform(TransformQuery),
    Window(WindowQuery),
}

fn qerr(file: &str, message: &str) -> Error {
    Error::Query {
        file: file.to_string(),
        message: message.to_string(),
    }
}

fn parse_query(file: &str, text: &str) -> Result<Parsed> {
    let statements =
        Parser::parse_sql(&GenericDialect {}, text).map_err(|e| qerr(file, &e.to_string()))?;
    let [Statement::Insert(insert)] = statements.as_slice() else {
        return Err(qerr(
            file,
            "expected exactly one INSERT INTO <table> SELECT … statement",
        ));
    };
    let TableObject::TableName(name) = &insert.table else {
        return Err(qerr(file, "INSERT target must be a table name"));
    };
    let target = name.to_string().trim_matches('"').to_string();
    if !is_table_name(&target) || RESERVED.contains(&target.as_str()) {
        return Err(qerr(file, &format!("invalid target table {target:?} (lower-case letters, digits, _; not incoming/quarantine)")));
    }
    let Some(query) = &insert.source else {
        return Err(qerr(file, "INSERT needs a SELECT"));
    };
    if query.order_by.is_some() || query.limit_clause.is_some() || query.with.is_some() {
        return Err(qerr(
            file,
            "ORDER BY, LIMIT and WITH are not supported in streaming queries",
        ));
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(qerr(file, "expected a plain SELECT"));
    };
    let from = select
        .from
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if target == TRANSACTIONS {
        if !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
            || select.having.is_some()
        {
            return Err(qerr(
                file,
                "the transform query is per record: no GROUP BY/HAVING",
            ));
        }
        if from != INCOMING {
            return Err(qerr(file, "the transform query must read FROM incoming"));
        }
        return Ok(Parsed::Transform(TransformQuery {
            file: file.to_string(),
            select_sql: query.to_string(),
        }));
    }
    if from != TRANSACTIONS {
        return Err(qerr(file, "window queries read FROM transactions"));
    }
    if select.having.is_some() || select.distinct.is_some() {
        return Err(qerr(
            file,
            "HAVING and DISTINCT are not supported in window queries",
        ));
    }
    let mut window: Option<(String, i64, i64)> = None; // (alias, width, slide)
    let mut items = Vec::new(); // (sql, name, Some(agg))
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => return Err(qerr(file, "wildcards are not supported in window queries")),
        };
        if let Some((width, slide)) = window_call(file, expr)? {
            if window.is_some() {
                return Err(qerr(file, "only one window per query"));
            }
            window = Some((alias.unwrap_or_else(|| "window".into()), width, slide));
            continue;
        }
        let agg = aggregate_kind(file, expr)?;
        let name = match (&alias, expr) {
            (Some(a), _) => a.clone(),
            (None, Expr::Identifier(i)) => i.value.clone(),
            (None, Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|i| i.value.clone()).unwrap_or_default()
            }
            (None, _) => return Err(qerr(file, &format!("give `{expr}` an alias (AS name)"))),
        };
        if agg.is_none() && contains_aggregate(expr) {
            return Err(qerr(
                file,
                &format!("`{expr}`: aggregates must be top-level SUM/COUNT/MIN/MAX items"),
            ));
        }
        let sql = match agg {
            // Integer sums in 38 digits (see crate::widen): DataFusion's
            // integer SUM wraps on overflow.
            Some(AggKind::Sum) => match single_arg(expr) {
                Some(arg) => format!("SUM({}({arg}))", crate::widen::NAME),
                None => expr.to_string(),
            },
            _ => expr.to_string(),
        };
        items.push((sql, name, agg));
    }
    let Some((alias, width_us, slide_us)) = window else {
        return Err(qerr(file, "a query writing a table other than transactions needs tumble(...) or hop(...) in SELECT and GROUP BY"));
    };
    let GroupByExpr::Expressions(group, _) = &select.group_by else {
        return Err(qerr(file, "GROUP BY ALL is not supported"));
    };
    let mut grouped_window = false;
    let mut group_keys = Vec::new();
    for g in group {
        let is_window = matches!(g, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(&alias))
            || window_call(file, g)?.is_some();
        if is_window {
            grouped_window = true;
        } else {
            group_keys.push(g.to_string());
        }
    }
    if !grouped_window {
        return Err(qerr(
            file,
            &format!("GROUP BY must include the window ({alias})"),
        ));
    }
    let pane = format!(
        "date_bin(INTERVAL '{} seconds', event_time)",
        slide_us / 1_000_000
    );
    let mut select_list = vec![format!("{pane} AS __pane")];
    let mut keys = Vec::new();
    let mut aggs = Vec::new();
    for (sql, name, agg) in &items {
        select_list.push(format!("{sql} AS \"{name}\""));
        match agg {
            Some(kind) => aggs.push((name.clone(), *kind)),
            None => keys.push(name.clone()),
        }
    }
    if aggs.is_empty() {
        return Err(qerr(file, "a window query needs at least one aggregate"));
    }
    let mut group_list = vec![pane];
    group_list.extend(group_keys);
    let mut partial_sql = format!("SELECT {} FROM {from}", select_list.join(", "));
    if let Some(w) = &select.selection {
        partial_sql.push_str(&format!(" WHERE {w}"));
    }
    partial_sql.push_str(&format!(" GROUP BY {}", group_list.join(", ")));
    for name in keys.iter().chain(aggs.iter().map(|(n, _)| n)) {
        if name.starts_with("window_") || name == "__pane" {
            return Err(qerr(file, &format!("column name {name:?} is reserved")));
        }
    }
    Ok(Parsed::Window(WindowQuery {
        file: file.to_string(),
        target,
        width_us,
        slide_us,
        partial_sql,
        keys,
        aggs,
    }))
}

fn is_table_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn function_args(args: &FunctionArguments) -> Vec<&Expr> {
    match args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `tumble(interval)` → (width, width); `hop(slide, width)` → (width, slide).
fn window_call(file: &str, expr: &Expr) -> Result<Option<(i64, i64)>> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_lowercase();
    let args = function_args(&f.args);
    let spans = args
        .iter()
        .map(|a| interval_us(file, a))
        .collect::<Result<Vec<_>>>();
    match name.as_str() {
        "tumble" => match spans?.as_slice() {
            [w] => Ok(Some((*w, *w))),
            _ => Err(qerr(
                file,
                "tumble takes one interval: tumble(interval '1 day')",
            )),
        },
        "hop" => match spans?.as_slice() {
            [slide, width] => {
                if width % slide != 0 {
                    return Err(qerr(file, "hop width must be a multiple of its slide"));
                }
                Ok(Some((*width, *slide)))
            }
            _ => Err(qerr(
                file,
                "hop takes (slide, width): hop(interval '1 hour', interval '1 day')",
            )),
        },
        "session" => Err(qerr(
            file,
            "session windows are not supported by the embedded engine",
        )),
        _ => Ok(None),
    }
}

/// Parses `INTERVAL '1 day'`, `INTERVAL '5' MINUTE`, … into microseconds
/// (whole seconds, fixed-length units only).
fn interval_us(file: &str, expr: &Expr) -> Result<i64> {
    let text = expr.to_string();
    let err = || {
        qerr(
            file,
            &format!("{text}: expected INTERVAL '<n> <second|minute|hour|day|week>'"),
        )
    };
    let body = text
        .trim()
        .strip_prefix("INTERVAL")
        .or_else(|| text.trim().strip_prefix("interval"))
        .ok_or_else(err)?
        .trim();
    let (quoted, rest) = body
        .strip_prefix('\'')
        .and_then(|b| b.split_once('\''))
        .ok_or_else(err)?;
    let spec = format!("{quoted} {rest}").to_ascii_lowercase();
    let mut words = spec.split_whitespace();
    let n: i64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(err)?;
    let unit = words.next().ok_or_else(err)?;
    if words.next().is_some() || n <= 0 {
        return Err(err());
    }
    let secs = match unit.trim_end_matches('s') {
        "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        _ => return Err(err()),
    };
    // Window arithmetic adds widths to event times: keep widths far from
    // the i64 edge (and out of the overflow that a huge count would cause).
    n.checked_mul(secs)
        .filter(|s| *s <= MAX_INTERVAL_SECS)
        .map(|s| s * 1_000_000)
        .ok_or_else(|| {
            qerr(
                file,
                &format!(
                    "{text}: interval too large (at most {} days)",
                    MAX_INTERVAL_SECS / 86_400
                ),
            )
        })
}

/// Longest window width or slide: 100 years of 365 days.
const MAX_INTERVAL_SECS: i64 = 36_500 * 86_400;

fn aggregate_kind(file: &str, expr: &Expr) -> Result<Option<AggKind>> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_lowercase();
    let kind = match name.as_str() {
        "sum" => AggKind::Sum,
        "count" => AggKind::Count,
        "min" => AggKind::Min,
        "max" => AggKind::Max,
        "avg" | "mean" | "median" | "stddev" | "variance" | "approx_distinct" | "array_agg" | "string_agg" => {
            return Err(qerr(file, &format!("{name}() cannot be merged across micro-batches; use SUM/COUNT/MIN/MAX (e.g. SUM(x) and COUNT(x) for an average)")))
        }
        _ => return Ok(None),
    };
    if let FunctionArguments::List(list) = &f.args {
        if list.duplicate_treatment.is_some() {
            return Err(qerr(
                file,
                "DISTINCT aggregates cannot be merged across micro-batches",
            ));
        }
    }
    if f.over.is_some() {
        return Err(qerr(file, "OVER windows are not supported; use tumble/hop"));
    }
    Ok(Some(kind))
}

/// The one plain argument of a function call, as SQL text.
fn single_arg(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] if list.clauses.is_empty() => {
            Some(e.to_string())
        }
        _ => None,
    }
}

fn contains_aggregate(expr: &Expr) -> bool {
    let text = expr.to_string().to_ascii_lowercase();
    ["sum(", "count(", "min(", "max(", "avg("]
        .iter()
        .any(|a| text.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_queries_plan() {
        let q = Queries::builtin().unwrap();
        assert_eq!(q.windows.len(), 1);
        let w = &q.windows[0];
        assert_eq!(w.target, "cashflow_daily");
        assert_eq!(w.width_us, 86_400_000_000);
        assert_eq!(w.keys, ["account_id", "currency", "category"]);
        assert_eq!(
            w.aggs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["inflow_minor", "outflow_minor", "net_minor", "tx_count"]
        );
        assert!(
            w.partial_sql
                .contains("date_bin(INTERVAL '86400 seconds', event_time) AS __pane"),
            "{}",
            w.partial_sql
        );
    }

    #[test]
    fn hop_windows_and_errors() {
        let t = ("t.sql", "INSERT INTO transactions SELECT * FROM incoming");
        let hop = ("h.sql", "INSERT INTO hourly SELECT hop(interval '1 hour', interval '1 day') AS w, currency, SUM(amount_minor) AS s FROM transactions WHERE amount_minor > 0 GROUP BY w, currency");
        let q = Queries::parse([t, hop]).unwrap();
        assert_eq!(q.windows[0].slide_us, 3_600_000_000);
        assert_eq!(q.windows[0].width_us, 86_400_000_000);
        assert!(q.windows[0].partial_sql.contains("WHERE amount_minor > 0"));

        let bad = |sql: &'static str| Queries::parse([t, ("b.sql", sql)]).unwrap_err().to_string();
        assert!(bad("INSERT INTO x SELECT tumble(interval '1 day') AS w, AVG(amount_minor) AS a FROM transactions GROUP BY w").contains("avg"));
        assert!(bad("INSERT INTO x SELECT tumble(interval '1 month') AS w, SUM(amount_minor) AS a FROM transactions GROUP BY w").contains("INTERVAL"));
        let huge = bad("INSERT INTO x SELECT tumble(interval '106751991167 days') AS w, SUM(amount_minor) AS a FROM transactions GROUP BY w");
        assert!(
            huge.contains("too large") && huge.contains("b.sql"),
            "{huge}"
        );
        assert!(bad("INSERT INTO x SELECT tumble(interval '1 day') AS w, SUM(amount_minor) AS a FROM transactions GROUP BY currency").contains("GROUP BY must include"));
        assert!(
            bad("INSERT INTO x SELECT SUM(amount_minor) AS a FROM transactions").contains("tumble")
        );
        assert!(bad("INSERT INTO x SELECT hop(interval '7 hour', interval '1 day') AS w, SUM(amount_minor) AS a FROM transactions GROUP BY w").contains("multiple"));
        assert!(bad("INSERT INTO quarantine SELECT tumble(interval '1 day') AS w, SUM(amount_minor) AS a FROM transactions GROUP BY w").contains("invalid target"));
        assert!(Queries::parse([hop])
            .unwrap_err()
            .to_string()
            .contains("no query writes"));
    }

    #[test]
    fn interval_forms() {
        let e = |s: &str| {
            Parser::new(&GenericDialect {})
                .try_with_sql(s)
                .unwrap()
                .parse_expr()
                .unwrap()
        };
        assert_eq!(
            interval_us("f", &e("INTERVAL '5 minutes'")).unwrap(),
            300_000_000
        );
        assert_eq!(
            interval_us("f", &e("INTERVAL '2' HOUR")).unwrap(),
            7_200_000_000
        );
        assert!(interval_us("f", &e("INTERVAL '1 year'")).is_err());
        // Microseconds past i64 (or past 100 years) are an error naming the
        // file, not a panic or a wrapped width.
        for big in [
            "INTERVAL '9223372036854775807 seconds'",
            "INTERVAL '9223372036854 seconds'",
            "INTERVAL '36501 days'",
        ] {
            let err = interval_us("my_windows.sql", &e(big))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("my_windows.sql") && err.contains("too large"),
                "{err}"
            );
        }
        assert_eq!(
            interval_us("f", &e("INTERVAL '36500 days'")).unwrap(),
            36_500 * 86_400 * 1_000_000
        );
    }
}
