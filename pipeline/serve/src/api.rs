//! The `/api/v1` endpoints and the probes. Every read runs on one published
//! snapshot (`QueryService`), on the service's runtime, with the query
//! timeout; filters become DataFusion expressions (never SQL text), so no
//! input is ever parsed as SQL.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::Like;
use datafusion::prelude::{cast, col, lit, DataFrame, Expr, SessionContext};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::index::TxFilter;
use crate::rows::{rows, Row};
use crate::server::{AppState, Component};
use crate::tokens::Role;

type State = web::Data<AppState>;
type Answer<T> = Result<web::Json<T>, ApiError>;

/// Every route (method, path), for 405 answers to other methods.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/transactions"),
    ("GET", "/api/v1/transactions/{source}/{transaction_id}"),
    (
        "POST",
        "/api/v1/transactions/{source}/{transaction_id}/category",
    ),
    ("POST", "/api/v1/ingest"),
    ("GET", "/api/v1/quarantine"),
    ("GET", "/api/v1/quarantine/{id}"),
    ("POST", "/api/v1/quarantine/{id}/resubmit"),
    ("GET", "/api/v1/windows"),
    ("GET", "/api/v1/windows/{table}"),
    ("GET", "/api/v1/forecasts"),
    ("GET", "/api/v1/forecasts/{series_id}/points"),
    ("GET", "/api/v1/forecasts/{series_id}/runs"),
    ("GET", "/api/v1/forecasts/weekly"),
    ("GET", "/api/v1/runway"),
    ("GET", "/api/v1/balances"),
    ("GET", "/api/v1/recurring"),
    ("GET", "/api/v1/models"),
    ("POST", "/api/v1/models/{version}/register"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route("/api/v1/openapi.json", web::get().to(openapi))
        .route("/api/v1/status", web::get().to(status))
        .route("/api/v1/transactions", web::get().to(list_transactions))
        .route(
            "/api/v1/transactions/{source}/{transaction_id}",
            web::get().to(get_transaction),
        )
        .route(
            "/api/v1/transactions/{source}/{transaction_id}/category",
            web::post().to(correct_category),
        )
        .route("/api/v1/ingest", web::post().to(crate::ingest::ingest))
        .route("/api/v1/quarantine", web::get().to(list_quarantine))
        .route("/api/v1/quarantine/{id}", web::get().to(get_quarantined))
        .route(
            "/api/v1/quarantine/{id}/resubmit",
            web::post().to(crate::ingest::resubmit),
        )
        .route("/api/v1/windows", web::get().to(list_windows))
        .route("/api/v1/windows/{table}", web::get().to(window_rows))
        .route("/api/v1/forecasts", web::get().to(list_forecasts))
        .route(
            "/api/v1/forecasts/{series_id}/points",
            web::get().to(forecast_points),
        )
        .route(
            "/api/v1/forecasts/{series_id}/runs",
            web::get().to(forecast_runs),
        )
        .route("/api/v1/forecasts/weekly", web::get().to(weekly))
        .route("/api/v1/runway", web::get().to(runway))
        .route("/api/v1/balances", web::get().to(balances))
        .route("/api/v1/recurring", web::get().to(recurring))
        .route("/api/v1/models", web::get().to(list_models))
        .route(
            "/api/v1/models/{version}/register",
            web::post().to(register_model),
        );
}

// ---------------------------------------------------------------- helpers

/// A query value that was given and is not empty (`?from=` means no bound).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message)
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339, as microseconds since the epoch.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    let t = text.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_micros())
            .ok_or_else(|| bad(format!("{name}: {t:?} is not a date")));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| dt.timestamp_micros())
        .map_err(|_| {
            bad(format!(
                "{name}: {t:?} is neither a date (2025-01-31) nor an RFC 3339 time (2025-01-31T12:00:00Z)"
            ))
        })
}

fn ts_lit(us: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(us),
        Some("UTC".into()),
    ))
}

/// Case-insensitive substring match, with `%`, `_` and `\` in `text` taken
/// literally.
fn contains(column: &str, text: &str) -> Expr {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Expr::Like(Like::new(
        false,
        Box::new(col(column)),
        Box::new(lit(pattern)),
        Some('\\'),
        true,
    ))
}

/// Reads a request body of at most `limit` bytes (after authorization, so
/// an unauthorized client never gets its body read or validated).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    use futures::StreamExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes (http.max_body_bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("invalid_body", format!("the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A JSON body, read after authorization.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as application/json, not {ct}"),
        ));
    }
    let body = read_body(req, payload, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the JSON body: {e}")))
}

pub(crate) fn encode_cursor(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor is not one this API returned (use next_cursor of the previous page)",
            )
        })
}

/// A session on the latest snapshot, and whether `table` is in it.
pub(crate) async fn session(
    state: &AppState,
    table: &str,
) -> Result<(SessionContext, bool), ApiError> {
    let (ctx, _) = state.queries.context().await?;
    let exists = ctx.table_exist(table)?;
    Ok((ctx, exists))
}

pub(crate) async fn collect(df: DataFrame) -> Result<Vec<Row>, ApiError> {
    Ok(rows(&df.collect().await?))
}

/// Rows of `table` (or view) filtered by `filter`, in `order`, one page
/// from `offset`; an empty list when the table does not exist yet.
pub(crate) async fn page_of(
    state: std::sync::Arc<AppState>,
    table: &'static str,
    filter: Option<Expr>,
    order: Vec<(&'static str, bool)>,
    offset: usize,
    limit: usize,
) -> Result<Vec<Row>, ApiError> {
    let (ctx, exists) = session(&state, table).await?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut df = ctx.table(table).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    if !order.is_empty() {
        df = df.sort(
            order
                .into_iter()
                .map(|(c, asc)| col(c).sort(asc, false))
                .collect(),
        )?;
    }
    let limit = (limit != usize::MAX).then_some(limit);
    collect(df.limit(offset, limit)?).await
}

/// One page of transactions in (`event_time`, `source`, `transaction_id`)
/// order, in two passes: the page's event-time span from the sort columns
/// alone (the filter and top-k then carry four columns, not every column of
/// every matching row), then whole rows of that span only. Same rows as one
/// sorted pass: the page is the first `limit` filtered rows of the span.
///
/// When the snapshot holds `transactions` in memory the page comes from the
/// snapshot's sorted index instead ([`crate::index`]): the same rows.
pub(crate) async fn transactions_page(
    state: std::sync::Arc<AppState>,
    filter: Option<Expr>,
    wanted: TxFilter,
    limit: usize,
) -> Result<Vec<Transaction>, ApiError> {
    let snap = state.queries.snapshot().await?;
    if let Some(files) = snap.in_memory("transactions") {
        let version = snap.version_of("transactions");
        if let Some(idx) = state.tx_index.get(version, files).await {
            if let Some(page) = idx.page(&wanted, limit) {
                if let Some(found) = transactions_of(&page) {
                    return Ok(found);
                }
                return rows(&[page]).into_iter().map(transaction).collect();
            }
        }
    }
    sql_page(&snap.ctx, filter, limit)
        .await?
        .into_iter()
        .map(transaction)
        .collect()
}

/// [`transactions_page`] with SQL over the session.
pub(crate) async fn sql_page(
    ctx: &SessionContext,
    filter: Option<Expr>,
    limit: usize,
) -> Result<Vec<Row>, ApiError> {
    if !ctx.table_exist("transactions")? {
        return Ok(Vec::new());
    }
    let order = || {
        vec![
            col("event_time").sort(true, false),
            col("source").sort(true, false),
            col("transaction_id").sort(true, false),
        ]
    };
    let mut keys = ctx.table("transactions").await?;
    if let Some(f) = &filter {
        keys = keys.filter(f.clone())?;
    }
    let keys = keys
        .select_columns(&["event_time", "source", "transaction_id"])?
        .sort(order())?
        .limit(0, Some(limit))?
        .collect()
        .await?;
    let times: Vec<_> = keys.iter().filter(|b| b.num_rows() > 0).collect();
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return Ok(Vec::new());
    };
    let from = ScalarValue::try_from_array(first.column(0), 0)?;
    let to = ScalarValue::try_from_array(last.column(0), last.num_rows() - 1)?;
    let mut rows = ctx.table("transactions").await?;
    let mut narrowed = vec![col("event_time").gt_eq(lit(from.clone()))];
    // A null event time sorts last: then the span is open-ended and takes
    // the null times too.
    if to.is_null() {
        narrowed = vec![col("event_time")
            .gt_eq(lit(from.clone()))
            .or(col("event_time").is_null())];
    } else {
        narrowed.push(col("event_time").lt_eq(lit(to)));
    }
    if from.is_null() {
        narrowed.clear();
    }
    if let Some(f) = and_all(filter.into_iter().chain(narrowed).collect()) {
        rows = rows.filter(f)?;
    }
    collect(rows.sort(order())?.limit(0, Some(limit))?).await
}

fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(Expr::and)
}

// ---------------------------------------------------------------- probes

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, body = Health)))]
pub(crate) async fn health(state: State, req: HttpRequest) -> Answer<Health> {
    state.authorize_probe(&req)?;
    Ok(web::Json(Health {
        status: "ok".into(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Every component is ready.
    pub ready: bool,
    /// The last published micro-batch readers see.
    pub snapshot_seq: i64,
    pub components: Vec<Component>,
}

/// Readiness of each component: the engine, each source, each sink, the
/// store. 503 while one of them is not ready.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub(crate) async fn ready(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_probe(&req)?;
    let mut components = (state.components)();
    let st = state.clone().into_inner();
    let store = state
        .offload(async move { Ok(st.queries.context().await.map(|(_, v)| v)) })
        .await?;
    let seq = match &store {
        Ok(v) => v.seq,
        Err(_) => -1,
    };
    components.push(Component {
        kind: "store".into(),
        name: "store".into(),
        ready: store.is_ok(),
        detail: store.err().map(|e| e.to_string()),
    });
    let ready = components.iter().all(|c| c.ready);
    let body = Readiness {
        ready,
        snapshot_seq: seq,
        components,
    };
    Ok(if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

/// Prometheus text format (0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize_probe(&req)?;
    let text = crate::metrics::render(&state.metrics.snapshot());
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

fn ms_time(ms: i64) -> Option<String> {
    (ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ms))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn us_time(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The pipeline after its last committed micro-batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineStatus {
    /// Micro-batches committed since the service started.
    pub batches: u64,
    /// When the last micro-batch was committed (RFC 3339).
    pub last_commit_at: Option<String>,
    /// How long that commit took.
    pub last_batch_ms: u64,
    /// Event-time watermark.
    pub watermark: Option<String>,
    /// Newest event time seen.
    pub max_event_time: Option<String>,
    /// Wall clock minus the newest event time, in seconds.
    pub event_lag_s: Option<f64>,
}

/// One source since the service started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceStatus {
    pub name: String,
    pub accepted: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// When it last had records committed.
    pub last_seen_at: Option<String>,
    /// Seconds since then.
    pub idle_s: Option<f64>,
}

/// One sink since the service started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkStatus {
    pub name: String,
    pub delivered: u64,
    pub retries: u64,
    /// Outbox entries waiting for it.
    pub buffered: u64,
    pub overflows: u64,
    pub rejected: u64,
    pub points: u64,
}

/// One background job since the service started.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobStatus {
    pub name: String,
    pub runs: u64,
    pub failures: u64,
    pub running: bool,
    /// Outcome of the last finished run.
    pub last_ok: Option<bool>,
    pub last_start_at: Option<String>,
    pub last_duration_ms: u64,
    pub last_error: Option<String>,
}

/// The pipeline's health in one answer (what the dashboard's health view
/// shows).
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Now, on the server (RFC 3339).
    pub now: String,
    /// The last published micro-batch readers see (-1: none yet).
    pub snapshot_seq: i64,
    pub pipeline: PipelineStatus,
    pub sources: Vec<SourceStatus>,
    pub sinks: Vec<SinkStatus>,
    pub jobs: Vec<JobStatus>,
    /// Each component as `/ready` reports it.
    pub components: Vec<Component>,
}

/// The pipeline's health: sources and their counts, throughput inputs,
/// watermark and lag, sinks and their buffers, background jobs, components.
#[utoipa::path(get, path = "/api/v1/status", tag = "probes",
    responses((status = 200, body = Status)),
    security(("bearer" = [])))]
pub(crate) async fn status(state: State, req: HttpRequest) -> Answer<Status> {
    state.authorize(&req, Role::Read)?;
    let components = (state.components)();
    let st = state.clone().into_inner();
    let seq = state
        .offload(async move { Ok(st.queries.context().await.map(|(_, v)| v.seq).unwrap_or(-1)) })
        .await?;
    let m = state.metrics.snapshot();
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    let p = &m.pipeline;
    Ok(web::Json(Status {
        now: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        snapshot_seq: seq,
        pipeline: PipelineStatus {
            batches: m.batches,
            last_commit_at: ms_time(p.last_commit_ms),
            last_batch_ms: p.last_batch_ms,
            watermark: p.watermark_us.and_then(us_time),
            max_event_time: p.max_event_time_us.and_then(us_time),
            event_lag_s: p
                .max_event_time_us
                .map(|t| now_ms as f64 / 1000.0 - t as f64 / 1e6),
        },
        sources: m
            .sources
            .iter()
            .map(|(name, c)| {
                let seen = m.source_seen_ms.get(name).copied();
                SourceStatus {
                    name: name.clone(),
                    accepted: c.accepted,
                    duplicates: c.duplicates,
                    quarantined: c.quarantined,
                    last_seen_at: seen.and_then(ms_time),
                    idle_s: seen.map(|s| (now_ms - s).max(0) as f64 / 1000.0),
                }
            })
            .collect(),
        sinks: m
            .sinks
            .iter()
            .map(|(name, c)| SinkStatus {
                name: name.clone(),
                delivered: c.delivered,
                retries: c.retries,
                buffered: c.buffered,
                overflows: c.overflows,
                rejected: c.rejected,
                points: c.points,
            })
            .collect(),
        jobs: m
            .jobs
            .iter()
            .map(|(name, j)| JobStatus {
                name: name.clone(),
                runs: j.runs,
                failures: j.failures,
                running: j.running,
                last_ok: j.last_ok,
                last_start_at: ms_time(j.last_start_ms),
                last_duration_ms: j.last_duration_ms,
                last_error: j.last_error.clone(),
            })
            .collect(),
        components,
    }))
}

pub(crate) async fn openapi(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

// ---------------------------------------------------------------- transactions

/// Filters of the transaction list (all optional, combined with AND).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Only this account.
    pub account: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Only this currency (ISO 4217).
    pub currency: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Event time on or after this date (`2025-01-31`) or time (RFC 3339).
    pub from: Option<String>,
    /// Event time before this date or time (exclusive).
    pub to: Option<String>,
    /// Signed amount in minor units, at least this (outflows are negative).
    pub min_amount: Option<i64>,
    /// Signed amount in minor units, at most this.
    pub max_amount: Option<i64>,
    /// Only records whose categorization needs (or does not need) review.
    pub needs_review: Option<bool>,
    /// Text in the description or counterparty (case-insensitive).
    pub q: Option<String>,
    /// Page size (default `http.default_page_size`, at most `http.max_page_size`).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One stored transaction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Transaction {
    pub source: String,
    pub transaction_id: String,
    pub account_id: String,
    /// Signed amount in minor units of `currency` (inflow positive).
    pub amount_minor: i64,
    /// The same amount as exact decimal text in major units.
    #[serde(default)]
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub counterparty: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub category_confidence: Option<f64>,
    /// `input` (the record had it), `model` or `default`.
    #[serde(default)]
    pub category_source: Option<String>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub needs_review: Option<bool>,
    /// RFC 3339 UTC.
    pub event_time: String,
    #[serde(default)]
    pub posted_at: Option<String>,
    #[serde(default)]
    pub ingested_at: Option<String>,
}

pub(crate) fn transaction(row: Row) -> Result<Transaction, ApiError> {
    let mut t: Transaction =
        serde_json::from_value(serde_json::Value::Object(row)).map_err(ApiError::internal)?;
    let exp = finopsia_udf_core::currency::exponent(&t.currency).unwrap_or(2);
    t.amount = finopsia_udf_core::currency::format_minor(t.amount_minor, exp);
    Ok(t)
}

/// The transactions of `b` read cell by cell, the same values
/// [`transaction`] reads from its JSON rows without building them; `None`
/// when a cell is not what [`Transaction`] holds (then the rows are read
/// the general way, with its error).
pub(crate) fn transactions_of(
    b: &datafusion::arrow::array::RecordBatch,
) -> Option<Vec<Transaction>> {
    use serde_json::Value;
    // Columns looked up once per batch, not per cell.
    let columns: HashMap<&str, &datafusion::arrow::array::ArrayRef> = b
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .zip(b.columns())
        .collect();
    let cell = |name: &str, i: usize| {
        columns
            .get(name)
            .map_or(Value::Null, |c| crate::rows::value(c, i))
    };
    let text = |name: &str, i: usize| match cell(name, i) {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s)),
        _ => None,
    };
    let need = |name: &str, i: usize| text(name, i).flatten();
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let amount_minor = cell("amount_minor", i).as_i64()?;
        let currency = need("currency", i)?;
        let exp = finopsia_udf_core::currency::exponent(&currency).unwrap_or(2);
        out.push(Transaction {
            source: need("source", i)?,
            transaction_id: need("transaction_id", i)?,
            account_id: need("account_id", i)?,
            amount_minor,
            amount: finopsia_udf_core::currency::format_minor(amount_minor, exp),
            currency,
            direction: text("direction", i)?,
            description: text("description", i)?,
            counterparty: text("counterparty", i)?,
            category: text("category", i)?,
            category_confidence: match cell("category_confidence", i) {
                Value::Null => None,
                v => Some(v.as_f64()?),
            },
            category_source: text("category_source", i)?,
            model_version: text("model_version", i)?,
            needs_review: match cell("needs_review", i) {
                Value::Null => None,
                v => Some(v.as_bool()?),
            },
            event_time: need("event_time", i)?,
            posted_at: text("posted_at", i)?,
            ingested_at: text("ingested_at", i)?,
        });
    }
    Some(out)
}

/// A page of transactions in a stable order (event time, source,
/// transaction id).
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionPage {
    pub items: Vec<Transaction>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The filters of a transaction list as SQL and as the index's filter
/// (the same meaning; the cursor is the last page's last key).
pub(crate) fn transaction_filters(
    q: &TransactionQuery,
) -> Result<(Option<Expr>, TxFilter), ApiError> {
    let mut wanted = TxFilter {
        account: q.account.clone(),
        category: q.category.clone(),
        currency: q.currency.clone(),
        source: q.source.clone(),
        min_amount: q.min_amount,
        max_amount: q.max_amount,
        needs_review: q.needs_review,
        text: q.q.clone().filter(|t| !t.is_empty()),
        ..TxFilter::default()
    };
    let mut filters = Vec::new();
    for (column, value) in [
        ("account_id", &q.account),
        ("category", &q.category),
        ("currency", &q.currency),
        ("source", &q.source),
    ] {
        if let Some(v) = value {
            filters.push(col(column).eq(lit(v.clone())));
        }
    }
    if let Some(t) = given(&q.from) {
        let t = parse_time("from", t)?;
        wanted.from = Some(t);
        filters.push(col("event_time").gt_eq(ts_lit(t)));
    }
    if let Some(t) = given(&q.to) {
        let t = parse_time("to", t)?;
        wanted.to = Some(t);
        filters.push(col("event_time").lt(ts_lit(t)));
    }
    if let Some(a) = q.min_amount {
        filters.push(col("amount_minor").gt_eq(lit(a)));
    }
    if let Some(a) = q.max_amount {
        filters.push(col("amount_minor").lt_eq(lit(a)));
    }
    if let Some(r) = q.needs_review {
        filters.push(col("needs_review").eq(lit(r)));
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        filters.push(contains("description", text).or(contains("counterparty", text)));
    }
    if let Some(c) = given(&q.cursor) {
        let (t, s, id): (i64, String, String) = decode_cursor(c)?;
        wanted.after = Some((t, s.clone(), id.clone()));
        let t = ts_lit(t);
        filters.push(
            col("event_time")
                .gt(t.clone())
                .or(col("event_time").eq(t).and(
                    col("source").gt(lit(s.clone())).or(col("source")
                        .eq(lit(s))
                        .and(col("transaction_id").gt(lit(id)))),
                )),
        );
    }
    Ok((and_all(filters), wanted))
}

/// List transactions: filters, cursor paging in a stable order.
#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions",
    params(TransactionQuery),
    responses((status = 200, body = TransactionPage)),
    security(("bearer" = [])))]
pub(crate) async fn list_transactions(
    state: State,
    req: HttpRequest,
    q: web::Query<TransactionQuery>,
) -> Answer<TransactionPage> {
    state.authorize(&req, Role::Read)?;
    let q = q.into_inner();
    let limit = state.page_size(q.limit)?;
    let (filter, wanted) = transaction_filters(&q)?;
    let st = state.clone().into_inner();
    let mut found = state
        .offload(transactions_page(st, filter, wanted, limit + 1))
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let items = found;
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => {
            let t = parse_time("event_time", &last.event_time)?;
            Some(encode_cursor(&serde_json::json!([
                t,
                last.source,
                last.transaction_id
            ])))
        }
        _ => None,
    };
    Ok(web::Json(TransactionPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TransactionKey {
    /// The source the transaction came from.
    pub source: String,
    /// Its id within that source.
    pub transaction_id: String,
}

pub(crate) async fn find_transaction(
    state: &State,
    key: &TransactionKey,
) -> Result<Option<Transaction>, ApiError> {
    let st = state.clone().into_inner();
    let filter = col("source")
        .eq(lit(key.source.clone()))
        .and(col("transaction_id").eq(lit(key.transaction_id.clone())));
    let found = state
        .offload(page_of(st, "transactions", Some(filter), vec![], 0, 1))
        .await?;
    found.into_iter().next().map(transaction).transpose()
}

/// One transaction by source and id.
#[utoipa::path(get, path = "/api/v1/transactions/{source}/{transaction_id}", tag = "transactions",
    params(TransactionKey),
    responses((status = 200, body = Transaction)),
    security(("bearer" = [])))]
pub(crate) async fn get_transaction(
    state: State,
    req: HttpRequest,
    key: web::Path<TransactionKey>,
) -> Answer<Transaction> {
    state.authorize(&req, Role::Read)?;
    match find_transaction(&state, &key).await? {
        Some(t) => Ok(web::Json(t)),
        None => Err(ApiError::not_found(format!(
            "no transaction with source {:?} and transaction_id {:?}",
            key.source, key.transaction_id
        ))),
    }
}

/// A category correction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryCorrection {
    /// The right category.
    #[schema(min_length = 1, max_length = 200)]
    pub category: String,
    /// Kept with the correction.
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionAnswer {
    pub source: String,
    pub transaction_id: String,
    pub category: String,
    /// The category it had.
    pub previous_category: Option<String>,
    /// What happens next.
    pub message: String,
}

/// Correct a transaction's category (stored in `corrections`, the label
/// the next training run uses).
#[utoipa::path(post, path = "/api/v1/transactions/{source}/{transaction_id}/category", tag = "transactions",
    params(TransactionKey),
    request_body = CategoryCorrection,
    responses((status = 200, body = CorrectionAnswer)),
    security(("bearer" = [])))]
pub(crate) async fn correct_category(
    state: State,
    req: HttpRequest,
    key: web::Path<TransactionKey>,
    payload: web::Payload,
) -> Answer<CorrectionAnswer> {
    state.authorize(&req, Role::Ingest)?;
    let body: CategoryCorrection = json_body(&req, payload, state.config.max_body_bytes).await?;
    let category = body.category.trim().to_string();
    if category.is_empty() || category.len() > 200 || category.chars().any(char::is_control) {
        return Err(bad(
            "category must be 1 to 200 bytes of text without control characters",
        ));
    }
    if body.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return Err(bad("note must be at most 2000 bytes"));
    }
    if find_transaction(&state, &key).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no transaction with source {:?} and transaction_id {:?}",
            key.source, key.transaction_id
        )));
    }
    let st = state.clone().into_inner();
    let key = key.into_inner();
    let cat = category.clone();
    let previous = state
        .offload(async move {
            let _one = st.corrections.lock().await;
            finopsia_ops::models::correct(
                &st.data_dir,
                &key.source,
                &key.transaction_id,
                &cat,
                body.note.as_deref(),
            )
            .await
            .map(|p| (key, p))
            .map_err(|e| match e {
                finopsia_ops::Error::Input { message, .. } => ApiError::not_found(message),
                other => ApiError::internal(other),
            })
        })
        .await?;
    let (key, previous_category) = previous;
    Ok(web::Json(CorrectionAnswer {
        source: key.source,
        transaction_id: key.transaction_id,
        category,
        previous_category,
        message: "stored in corrections; the next training run (finopsia train) learns it".into(),
    }))
}

// ---------------------------------------------------------------- quarantine

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// `open` (default: not yet re-submitted), `resolved` or `all`.
    #[param(pattern = "^(open|resolved|all)?$")]
    pub status: Option<String>,
    /// Only this reason code (e.g. `invalid_amount`).
    pub reason: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Page size (default `http.default_page_size`, at most `http.max_page_size`).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One rejected input.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quarantined {
    /// Stable id of this row (from its source, position and raw bytes).
    #[serde(default)]
    pub id: String,
    pub source: String,
    /// The file or message it came from.
    #[serde(default)]
    pub file: Option<String>,
    /// Its line (files) or position.
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Machine-readable reason code.
    pub reason: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// The raw input as text (invalid UTF-8 replaced).
    #[serde(default)]
    pub raw: Option<String>,
    /// RFC 3339 UTC.
    #[serde(default)]
    pub quarantined_at: Option<String>,
    /// A fixed record was re-submitted in its place and stored.
    #[serde(default)]
    pub resolved: bool,
}

fn quarantine_id(q: &Quarantined) -> String {
    let mut buf = Vec::new();
    for part in [
        q.source.as_bytes(),
        q.file.as_deref().unwrap_or("").as_bytes(),
        q.line.map(|l| l.to_string()).unwrap_or_default().as_bytes(),
        q.raw.as_deref().unwrap_or("").as_bytes(),
    ] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part);
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&buf))
}

fn quarantined(row: Row) -> Result<Quarantined, ApiError> {
    let mut q: Quarantined =
        serde_json::from_value(serde_json::Value::Object(row)).map_err(ApiError::internal)?;
    q.id = quarantine_id(&q);
    Ok(q)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<Quarantined>,
    pub next_cursor: Option<String>,
}

const QUARANTINE_ORDER: [(&str, bool); 4] = [
    ("quarantined_at", true),
    ("source", true),
    ("file", true),
    ("line", true),
];

/// The ids of resolved quarantine rows.
async fn resolved_ids(state: &AppState) -> Result<HashSet<String>, ApiError> {
    let (ctx, exists) = session(state, RESOLVED).await?;
    let mut out = HashSet::new();
    if exists {
        for row in collect(ctx.table(RESOLVED).await?.select_columns(&["id"])?).await? {
            if let Some(id) = row.get("id").and_then(|v| v.as_str()) {
                out.insert(id.to_string());
            }
        }
    }
    Ok(out)
}

/// Every quarantine row matching `filter`, in order, with ids and whether
/// it is resolved.
async fn quarantine_rows(
    state: std::sync::Arc<AppState>,
    filter: Option<Expr>,
) -> Result<Vec<Quarantined>, ApiError> {
    let resolved = resolved_ids(&state).await?;
    let rows = page_of(
        state,
        "quarantine",
        filter,
        QUARANTINE_ORDER.to_vec(),
        0,
        usize::MAX,
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let mut q = quarantined(r)?;
            q.resolved = resolved.contains(&q.id);
            Ok(q)
        })
        .collect()
}

/// List quarantined inputs, filtered by status, reason and source, oldest
/// first.
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "quarantine",
    params(QuarantineQuery),
    responses((status = 200, body = QuarantinePage)),
    security(("bearer" = [])))]
pub(crate) async fn list_quarantine(
    state: State,
    req: HttpRequest,
    q: web::Query<QuarantineQuery>,
) -> Answer<QuarantinePage> {
    state.authorize(&req, Role::Read)?;
    let q = q.into_inner();
    let limit = state.page_size(q.limit)?;
    let offset: usize = match given(&q.cursor) {
        Some(c) => decode_cursor::<(usize,)>(c)?.0,
        None => 0,
    };
    let status = given(&q.status).unwrap_or("open");
    if !matches!(status, "open" | "resolved" | "all") {
        return Err(bad(format!("status {status:?}: use open, resolved or all")));
    }
    let mut filters = Vec::new();
    if let Some(r) = &q.reason {
        filters.push(col("reason").eq(lit(r.clone())));
    }
    if let Some(s) = &q.source {
        filters.push(col("source").eq(lit(s.clone())));
    }
    let st = state.clone().into_inner();
    let all = state.offload(quarantine_rows(st, and_all(filters))).await?;
    let mut items: Vec<Quarantined> = all
        .into_iter()
        .filter(|q| match status {
            "open" => !q.resolved,
            "resolved" => q.resolved,
            _ => true,
        })
        .skip(offset)
        .take(limit + 1)
        .collect();
    let more = items.len() > limit;
    items.truncate(limit);
    Ok(web::Json(QuarantinePage {
        next_cursor: more.then(|| encode_cursor(&serde_json::json!([offset + items.len()]))),
        items,
    }))
}

/// One quarantine row by id.
pub(crate) async fn find_quarantined(
    state: &State,
    id: &str,
) -> Result<Option<Quarantined>, ApiError> {
    let st = state.clone().into_inner();
    let all = state.offload(quarantine_rows(st, None)).await?;
    Ok(all.into_iter().find(|q| q.id == id))
}

/// One quarantined input by id, with its raw text.
#[utoipa::path(get, path = "/api/v1/quarantine/{id}", tag = "quarantine",
    params(("id" = String, Path, description = "The id from the quarantine list")),
    responses((status = 200, body = Quarantined)),
    security(("bearer" = [])))]
pub(crate) async fn get_quarantined(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
) -> Answer<Quarantined> {
    state.authorize(&req, Role::Read)?;
    let id = id.into_inner();
    match find_quarantined(&state, &id).await? {
        Some(q) => Ok(web::Json(q)),
        None => Err(ApiError::not_found(format!(
            "no quarantined input with id {id:?}"
        ))),
    }
}

/// The table of resolved quarantine rows.
pub const RESOLVED: &str = "quarantine_resolved";

/// Records that quarantine row `id` was resolved by a re-submitted record.
pub(crate) async fn mark_resolved(
    data_dir: &std::path::Path,
    id: &str,
    source: &str,
    transaction_id: Option<&str>,
) -> Result<(), ApiError> {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("transaction_id", DataType::Utf8, true),
        Field::new("resolved_at", finopsia_core::schema::ts_type(), true),
    ]));
    let now = chrono::Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(StringArray::from(vec![id])) as ArrayRef,
            std::sync::Arc::new(StringArray::from(vec![source])),
            std::sync::Arc::new(StringArray::from(vec![transaction_id])),
            std::sync::Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )?;
    let mut store = finopsia_store::Store::open(data_dir)?;
    store.ensure(RESOLVED, schema).await?;
    store.append(RESOLVED, vec![batch], None).await?;
    Ok(())
}

// ---------------------------------------------------------------- windows

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowTable {
    pub table: String,
    /// Its group keys, usable as filters of its rows.
    pub keys: Vec<String>,
}

/// The window tables and their keys.
#[utoipa::path(get, path = "/api/v1/windows", tag = "windows",
    responses((status = 200, body = Vec<WindowTable>)),
    security(("bearer" = [])))]
pub(crate) async fn list_windows(state: State, req: HttpRequest) -> Answer<Vec<WindowTable>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        state
            .windows
            .iter()
            .map(|(t, k)| WindowTable {
                table: t.clone(),
                keys: k.clone(),
            })
            .collect(),
    ))
}

/// A page of generic rows (column name → value).
#[derive(Debug, Serialize, ToSchema)]
pub struct RowPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Row>,
    pub next_cursor: Option<String>,
}

/// Rows of one window table: `from`/`to` on `window_start`, the table's own
/// keys as filters, `limit`, `cursor`. (The OpenAPI document lists each
/// window table's path with its keys.)
#[utoipa::path(get, path = "/api/v1/windows/{table}", tag = "windows",
    params(("table" = String, Path, description = "A window table, e.g. cashflow_daily")),
    responses((status = 200, body = RowPage)),
    security(("bearer" = [])))]
pub(crate) async fn window_rows(
    state: State,
    req: HttpRequest,
    table: web::Path<String>,
    q: web::Query<BTreeMap<String, String>>,
) -> Answer<RowPage> {
    state.authorize(&req, Role::Read)?;
    let table = table.into_inner();
    let Some((_, keys)) = state.windows.iter().find(|(t, _)| *t == table) else {
        return Err(ApiError::not_found(format!(
            "no window table {table:?} (known: {})",
            state
                .windows
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let mut filters = Vec::new();
    let mut limit = None;
    let mut offset = 0usize;
    for (k, v) in q.into_inner() {
        if v.trim().is_empty() && matches!(k.as_str(), "from" | "to" | "cursor" | "limit") {
            continue;
        }
        match k.as_str() {
            "from" => filters.push(col("window_start").gt_eq(ts_lit(parse_time("from", &v)?))),
            "to" => filters.push(col("window_start").lt(ts_lit(parse_time("to", &v)?))),
            "limit" => {
                limit = Some(
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("limit: {v:?} is not a whole number")))?,
                )
            }
            "cursor" => offset = decode_cursor::<(usize,)>(&v)?.0,
            key if keys.iter().any(|x| x == key) => filters.push(
                cast(col(key), datafusion::arrow::datatypes::DataType::Utf8).eq(lit(v.clone())),
            ),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "unknown filter {other:?} for {table}: use from, to, limit, cursor or a key ({})",
                        keys.join(", ")
                    ),
                ))
            }
        }
    }
    let limit = state.page_size(limit)?;
    let keys = keys.clone();
    let st = state.clone().into_inner();
    let mut found = state
        .offload(async move {
            let (ctx, exists) = session(&st, &table).await?;
            if !exists {
                return Ok(Vec::new());
            }
            let mut df = ctx.table(table.as_str()).await?;
            if let Some(f) = and_all(filters) {
                df = df.filter(f)?;
            }
            let mut order = vec![col("window_start").sort(true, false)];
            order.extend(keys.iter().map(|k| col(k.as_str()).sort(true, false)));
            collect(df.sort(order)?.limit(offset, Some(limit + 1))?).await
        })
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    Ok(web::Json(RowPage {
        next_cursor: more.then(|| encode_cursor(&serde_json::json!([offset + found.len()]))),
        items: found,
    }))
}

// ---------------------------------------------------------------- forecasts

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Only series of this kind (`org_net`, `account_balance`, …).
    pub kind: Option<String>,
    /// Only this currency.
    pub currency: Option<String>,
}

impl ForecastQuery {
    /// `kind = …` and `currency = …` for the filters given.
    fn filters(&self) -> Vec<Expr> {
        let mut out = Vec::new();
        if let Some(k) = &self.kind {
            out.push(col("kind").eq(lit(k.clone())));
        }
        if let Some(c) = &self.currency {
            out.push(col("currency").eq(lit(c.clone())));
        }
        out
    }
}

pub(crate) async fn all_rows(
    state: &State,
    table: &'static str,
    filter: Option<Expr>,
    order: Vec<(&'static str, bool)>,
) -> Result<Vec<Row>, ApiError> {
    let st = state.clone().into_inner();
    state
        .offload(page_of(st, table, filter, order, 0, usize::MAX))
        .await
}

/// One series' rows of a forecast relation, as of the latest snapshot
/// (read once per version of its tables, see [`crate::grouped`]).
async fn series_rows(
    state: &State,
    rel: crate::grouped::Relation,
    series: String,
) -> Result<Vec<Row>, ApiError> {
    let st = state.clone().into_inner();
    state
        .offload(async move {
            let snap = st.queries.snapshot().await?;
            st.series.rows(&snap, rel, &series).await
        })
        .await
}

/// The latest forecast run of every series (model, status, backtest
/// scores, runway figures).
#[utoipa::path(get, path = "/api/v1/forecasts", tag = "forecasts",
    params(ForecastQuery),
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn list_forecasts(
    state: State,
    req: HttpRequest,
    q: web::Query<ForecastQuery>,
) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    let filters = q.filters();
    Ok(web::Json(
        all_rows(
            &state,
            "forecast_runs_latest",
            and_all(filters),
            vec![("series_id", true)],
        )
        .await?,
    ))
}

/// The points (`ds`, `yhat` and its interval) of a series' latest forecast.
#[utoipa::path(get, path = "/api/v1/forecasts/{series_id}/points", tag = "forecasts",
    params(("series_id" = String, Path, description = "A series id from the forecast list")),
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn forecast_points(
    state: State,
    req: HttpRequest,
    series: web::Path<String>,
) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        series_rows(&state, crate::grouped::FORECAST_POINTS, series.into_inner()).await?,
    ))
}

/// Every run of one series, newest first.
#[utoipa::path(get, path = "/api/v1/forecasts/{series_id}/runs", tag = "forecasts",
    params(("series_id" = String, Path, description = "A series id from the forecast list")),
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn forecast_runs(
    state: State,
    req: HttpRequest,
    series: web::Path<String>,
) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        series_rows(&state, crate::grouped::FORECAST_RUNS, series.into_inner()).await?,
    ))
}

/// Runway of every balance series: the lowest projected balance, its date
/// and the first date below the threshold.
#[utoipa::path(get, path = "/api/v1/runway", tag = "forecasts",
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn runway(state: State, req: HttpRequest) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        all_rows(&state, "runway", None, vec![("series_id", true)]).await?,
    ))
}

/// The 13-week cash view of the latest forecast of the organisation (per
/// currency, `kind = org`) and each account (`kind = account`): per ISO
/// week inflow, outflow, net with its interval, known recurring items and
/// the balance with its band (`balance_basis` says whether it starts from a
/// known balance or is flows only).
#[utoipa::path(get, path = "/api/v1/forecasts/weekly", tag = "forecasts",
    params(ForecastQuery),
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn weekly(
    state: State,
    req: HttpRequest,
    q: web::Query<ForecastQuery>,
) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    let filters = q.filters();
    Ok(web::Json(
        all_rows(
            &state,
            "cash_13w_latest",
            and_all(filters),
            vec![("series_id", true), ("week", true)],
        )
        .await?,
    ))
}

/// Known account balances (anchors) as recorded with `finopsia balance
/// set` (or, for the bundled sample, made up), oldest first per account.
#[utoipa::path(get, path = "/api/v1/balances", tag = "forecasts",
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn balances(state: State, req: HttpRequest) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        all_rows(
            &state,
            "account_balances",
            None,
            vec![("account_id", true), ("as_of", true), ("recorded_at", true)],
        )
        .await?,
    ))
}

/// Detected recurring transactions (payroll, rent, taxes, subscriptions).
#[utoipa::path(get, path = "/api/v1/recurring", tag = "forecasts",
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
pub(crate) async fn recurring(state: State, req: HttpRequest) -> Answer<Vec<Row>> {
    state.authorize(&req, Role::Read)?;
    Ok(web::Json(
        all_rows(
            &state,
            "recurring",
            None,
            vec![("account_id", true), ("key", true)],
        )
        .await?,
    ))
}

// ---------------------------------------------------------------- models

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersion {
    pub version: String,
    /// The one categorizing new records.
    pub active: bool,
    /// Its metadata (training rows, holdout metrics, …).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    /// The active version (`bundled` when none is registered).
    pub active: String,
    pub versions: Vec<ModelVersion>,
}

fn registry(state: &AppState) -> finopsia_udfs::registry::Registry {
    finopsia_udfs::registry::Registry::for_data_dir(&state.data_dir)
}

/// The categorization models: the bundled one, every trained version, and
/// which is active.
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, body = Models)),
    security(("bearer" = [])))]
pub(crate) async fn list_models(state: State, req: HttpRequest) -> Answer<Models> {
    state.authorize(&req, Role::Read)?;
    let reg = registry(&state);
    let current = reg.current().map_err(ApiError::internal)?;
    let bundled = finopsia_udfs::registry::LoadedModel::bundled_version();
    let mut versions = vec![ModelVersion {
        version: bundled.to_string(),
        active: current.is_none(),
        metadata: serde_json::json!({ "bundled": true }),
    }];
    for (version, metadata) in reg.list().map_err(ApiError::internal)? {
        versions.push(ModelVersion {
            active: current.as_deref() == Some(version.as_str()),
            version,
            metadata,
        });
    }
    Ok(web::Json(Models {
        active: current.unwrap_or_else(|| bundled.to_string()),
        versions,
    }))
}

/// Make a trained version the active model (admin). The service switches
/// to it at its next micro-batch.
#[utoipa::path(post, path = "/api/v1/models/{version}/register", tag = "models",
    params(("version" = String, Path, description = "A version from the model list")),
    responses((status = 200, body = Models)),
    security(("bearer" = [])))]
pub(crate) async fn register_model(
    state: State,
    req: HttpRequest,
    version: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Role::Admin)?;
    let version = version.into_inner();
    if !finopsia_udfs::registry::valid_version(&version) {
        return Err(ApiError::not_found(format!("no model version {version:?}")));
    }
    let reg = registry(&state);
    if !reg.version_dir(&version).is_dir() {
        return Err(ApiError::not_found(format!("no model version {version:?}")));
    }
    reg.register(&version).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_model",
            format!("model {version} cannot be loaded: {e}"),
        )
    })?;
    tracing::info!(%version, "model registered through the API");
    let models = list_models(state, req).await?;
    Ok(HttpResponse::Ok().json(models.into_inner()))
}
