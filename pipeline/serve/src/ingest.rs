//! HTTP ingest: one more source into the one writer.
//!
//! [`IngestSource`] is a streaming source like the inbox or NATS: the
//! runtime runs it, and while it runs it lends its [`Feed`] (the bounded
//! channel to the engine writer) to the request handlers. A request's body
//! (a JSON array, NDJSON or CSV) is decoded and validated into one chunk,
//! sent through the feed, and answered only after the engine has committed
//! its micro-batch, with every record's fate: accepted, duplicate, or
//! quarantined with its reason code and position. Redelivery is dedup's
//! job: the same source + `transaction_id` is never stored twice, so a
//! client may always retry.
//!
//! What is committed where: the records and rejects in the micro-batch's
//! commits (HTTP has no upstream to resume, so no position is recorded for
//! it); then, for a request with an `Idempotency-Key` header, its answer in
//! `<data_dir>/state/idempotency/<sha256 of token id and key>.json`
//! (temporary file, fsync, rename). A retry with the same key replays the
//! stored answer. A crash after the commit but before the answer was stored
//! makes a retry process the body again: its records are then reported as
//! duplicates (they are stored once either way). Answers older than
//! `http.idempotency_ttl` (24h) are removed, at most hourly when an answer
//! is stored; a retry after that is processed again, with the same effect.
//!
//! A quarantined record can be re-submitted fixed in its place
//! ([`resubmit`]): it is ingested under the quarantined row's source, and
//! once it is stored (or found already stored) the row's id is appended to
//! the `quarantine_resolved` table, which the quarantine list reads to tell
//! open rows from resolved ones.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::array::AsArray;
use finopsia_core::input::{Chunk, FileDecoder, Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::stream::{Feed, Position, StreamSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::server::AppState;
use crate::tokens::Role;

/// Where handlers find the running source's feed.
#[derive(Debug, Default)]
pub struct FeedSlot(Mutex<Option<Feed>>);

impl FeedSlot {
    fn get(&self) -> Option<Feed> {
        self.0.lock().expect("feed slot").clone()
    }
}

/// The HTTP ingest source (its name is the default `source` of records
/// ingested over HTTP).
pub struct IngestSource {
    name: String,
    slot: Arc<FeedSlot>,
}

impl IngestSource {
    pub fn new(name: &str, slot: Arc<FeedSlot>) -> IngestSource {
        IngestSource {
            name: name.to_string(),
            slot,
        }
    }
}

#[async_trait::async_trait]
impl StreamSource for IngestSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        &mut self,
        _resume: Option<Position>,
        mut feed: Feed,
    ) -> finopsia_core::Result<()> {
        *self.slot.0.lock().expect("feed slot") = Some(feed.clone());
        feed.stopped().await;
        *self.slot.0.lock().expect("feed slot") = None;
        Ok(())
    }
}

/// Resolves a preset name (configured ones first, then the built-ins).
pub type PresetFn = Arc<dyn Fn(&str) -> Result<Preset, String> + Send + Sync>;

/// What ingest needs from the service.
pub struct IngestContext {
    pub slot: Arc<FeedSlot>,
    /// The default source name (`http`).
    pub source: String,
    pub preset: PresetFn,
    pub bounds: Bounds,
}

/// Per-token token buckets (`http.ingest_rate`, `http.ingest_burst`).
#[derive(Debug, Default)]
pub struct RateLimiter(Mutex<HashMap<String, (f64, Instant)>>);

impl RateLimiter {
    /// Takes one request from `key`'s bucket; `Err(seconds to wait)` when empty.
    pub fn take(&self, key: &str, rate: f64, burst: u32) -> Result<(), f64> {
        let mut map = self.0.lock().expect("rate limiter");
        let now = Instant::now();
        let (tokens, last) = map.entry(key.to_string()).or_insert((burst as f64, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / rate)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// `json` (an array of records), `ndjson` or `csv` (with its header).
    /// Default: from Content-Type (`application/json`,
    /// `application/x-ndjson`, `text/csv`).
    #[param(pattern = "^(json|ndjson|csv)$")]
    pub format: Option<String>,
    /// Input preset: `canonical` (default), `finopsia-seed` or one from the
    /// configuration's `[presets]`.
    pub preset: Option<String>,
    /// The `source` stored with the records (default `http`);
    /// (source, transaction_id) is the duplicate key.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub source: Option<String>,
}

/// One record's fate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RecordResult {
    /// Its place in the body: the array index for `json` (from 0), the line
    /// for `ndjson` and `csv` (from 1; a CSV header is line 1).
    pub position: u64,
    pub transaction_id: Option<String>,
    /// `accepted`, `duplicate` or `quarantined`.
    pub status: String,
    /// The quarantine reason code.
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// The answer to an ingest, sent after the records were committed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestAnswer {
    pub source: String,
    /// The micro-batch the records were committed in (0: nothing to commit).
    pub seq: i64,
    pub accepted: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Every record, in body order.
    pub results: Vec<RecordResult>,
}

fn valid_source(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn format_of(req: &HttpRequest, asked: Option<&str>) -> Result<(Format, bool), ApiError> {
    let name = match asked {
        Some(f) => f.to_ascii_lowercase(),
        None => {
            let ct = req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match ct.as_str() {
                "application/json" => "json".into(),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl"
                | "application/jsonlines" => "ndjson".into(),
                "text/csv" | "application/csv" => "csv".into(),
                other => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        format!(
                            "content type {other:?}: send application/json (an array), application/x-ndjson or text/csv, or pass ?format="
                        ),
                    ))
                }
            }
        }
    };
    match name.as_str() {
        "json" => Ok((Format::Ndjson, true)),
        "ndjson" => Ok((Format::Ndjson, false)),
        "csv" => Ok((Format::Csv, false)),
        other => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("format {other:?}: use json, ndjson or csv"),
        )),
    }
}

/// A JSON array of records as NDJSON text, one element per line (the
/// elements' own text, so amounts keep every digit; JSON allows line
/// breaks only between tokens, so they become spaces).
fn array_to_ndjson(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON array of records: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(body.len());
    for item in items {
        out.extend(
            item.get()
                .bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        out.push(b'\n');
    }
    Ok(out)
}

/// Decodes and validates a body into one chunk of `source`.
fn decode(
    body: Vec<u8>,
    format: Format,
    preset: &Preset,
    bounds: Bounds,
    source: &str,
) -> Result<Chunk, ApiError> {
    let mut d = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(body)),
        "request",
        format,
        preset,
        bounds,
        source,
    )
    .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let mut chunk = Chunk::empty(source);
    while let Some(c) = d
        .next_chunk(usize::MAX)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    {
        if chunk.records.num_rows() == 0 && chunk.rejects.is_empty() {
            chunk = c;
        } else {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body decoded into more than one chunk",
            ));
        }
    }
    Ok(chunk)
}

/// Commits `chunk` through the writer and says what became of each record.
async fn commit(
    ctx: &IngestContext,
    chunk: Chunk,
    json_array: bool,
    timeout: std::time::Duration,
) -> Result<IngestAnswer, ApiError> {
    let source = chunk.source.clone();
    let txids = chunk.records.column(1).as_string::<i32>();
    let mut results: Vec<RecordResult> = (0..chunk.records.num_rows())
        .map(|i| RecordResult {
            position: chunk.positions.line(i),
            transaction_id: Some(txids.value(i).to_string()),
            status: "accepted".into(),
            reason: None,
            detail: None,
        })
        .collect();
    for r in &chunk.rejects {
        results.push(RecordResult {
            position: r.line.unwrap_or(0),
            transaction_id: r.transaction_id.clone(),
            status: "quarantined".into(),
            reason: Some(r.reason.code().to_string()),
            detail: Some(r.detail.clone()),
        });
    }
    let n_valid = chunk.records.num_rows();
    if results.is_empty() {
        return Ok(IngestAnswer {
            source,
            seq: 0,
            accepted: 0,
            duplicates: 0,
            quarantined: 0,
            results,
        });
    }
    let unavailable = |m: &str| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{m}; retry (with the same Idempotency-Key): nothing is stored twice"),
        )
    };
    let Some(feed) = ctx.slot.get() else {
        return Err(unavailable(
            "ingest is not running (the service is starting or stopping)",
        ));
    };
    let ack = feed
        .send(chunk, Position::Null, false)
        .await
        .ok_or_else(|| unavailable("the engine has stopped"))?;
    let committed = match tokio::time::timeout(timeout, ack).await {
        Err(_) => {
            return Err(unavailable(
                "the commit took longer than http.query_timeout",
            ))
        }
        Ok(Err(_)) => return Err(unavailable("the engine stopped before the commit")),
        Ok(Ok(Err(message))) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "commit_failed",
                format!("the micro-batch could not be committed: {message}; retry"),
            ))
        }
        Ok(Ok(Ok(c))) => c,
    };
    for (row, conflicting) in committed.not_stored {
        if let Some(r) = results
            .get_mut(row as usize)
            .filter(|_| (row as usize) < n_valid)
        {
            if conflicting {
                r.status = "quarantined".into();
                r.reason = Some("conflicting_duplicate".into());
                r.detail = Some(
                    "same source and transaction_id as a stored record with different content; the first version is kept"
                        .into(),
                );
            } else {
                r.status = "duplicate".into();
            }
        }
    }
    if json_array {
        for r in &mut results {
            r.position = r.position.saturating_sub(1);
        }
    }
    results.sort_by_key(|r| r.position);
    Ok(IngestAnswer {
        source,
        seq: committed.seq,
        accepted: committed.counts.accepted,
        duplicates: committed.counts.duplicates,
        quarantined: committed.counts.quarantined,
        results,
    })
}

/// Keys of requests in flight, so two requests with one key never run at once.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<String>>);

struct InFlightGuard<'a>(&'a InFlight, String);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.lock().expect("in flight").remove(&self.1);
    }
}

fn idempotency_path(state: &AppState, token_id: &str, key: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{token_id}\0{key}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    state
        .data_dir
        .join("state")
        .join("idempotency")
        .join(format!("{hex}.json"))
}

/// How often expired answers are looked for.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes stored answers (and leftover temporary files) in `dir` last
/// written more than `ttl` ago; returns how many.
pub fn prune_answers(dir: &std::path::Path, ttl: std::time::Duration) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.ends_with(".json") || name.ends_with(".json.tmp")) {
            continue;
        }
        let age = entry
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if age.is_some_and(|a| a > ttl) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Prunes expired answers if the last look was over [`PRUNE_EVERY`] ago.
fn maybe_prune(state: &AppState) {
    let Some(ttl) = state.config.idempotency_ttl() else {
        return;
    };
    {
        let mut last = state.pruned.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let dir = state.data_dir.join("state").join("idempotency");
    match prune_answers(&dir, ttl) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "idempotency: expired answers removed"),
        Err(e) => tracing::warn!(error = %e, "idempotency: removing expired answers failed"),
    }
}

fn store_answer(path: &std::path::Path, answer: &IngestAnswer) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("idempotency dir");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(answer).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Ingest records: a JSON array, NDJSON or CSV body, answered after they are
/// committed, with every record's fate. Idempotent on source +
/// `transaction_id`; an `Idempotency-Key` header replays the first answer.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest",
    params(IngestQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for this key (per token)")),
    request_body(content = String, description = "A JSON array of records (canonical field names), NDJSON, or CSV with a header",
        content_type = "application/json"),
    responses((status = 200, body = IngestAnswer)),
    security(("bearer" = [])))]
pub(crate) async fn ingest(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<IngestQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = state.authorize(&req, Role::Ingest)?;
    let Some(ctx) = &state.ingest else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "ingest is not available in this process",
        ));
    };
    if let Err(wait) = state.limiter.take(
        &principal.id,
        state.config.ingest_rate,
        state.config.ingest_burst,
    ) {
        return Ok(HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", format!("{}", wait.ceil().max(1.0) as u64)))
            .json(crate::error::ErrorBody {
                error: crate::error::ErrorDetail {
                    code: "rate_limited".into(),
                    message: format!(
                        "more than http.ingest_rate ({}/s, burst {}) ingest requests for this token; retry later",
                        state.config.ingest_rate, state.config.ingest_burst
                    ),
                },
            }));
    }
    let q = q.into_inner();
    let key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().map(str::trim).filter(|k| {
                !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b))
            });
            Some(k.ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )
            })?)
        }
    };
    let path = key.map(|k| idempotency_path(&state, &principal.id, k));
    let _guard = match &path {
        Some(p) => {
            let name = p.display().to_string();
            if !state
                .in_flight
                .0
                .lock()
                .expect("in flight")
                .insert(name.clone())
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "in_progress",
                    "a request with this Idempotency-Key is in progress; retry when it has been answered",
                ));
            }
            if let Ok(bytes) = std::fs::read(p) {
                let _g = InFlightGuard(&state.in_flight, name);
                return Ok(HttpResponse::Ok()
                    .insert_header(("Idempotency-Replayed", "true"))
                    .content_type("application/json")
                    .body(bytes));
            }
            Some(InFlightGuard(&state.in_flight, name))
        }
        None => None,
    };
    let source = q.source.clone().unwrap_or_else(|| ctx.source.clone());
    if !valid_source(&source) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "source must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let preset = (ctx.preset)(q.preset.as_deref().unwrap_or("canonical"))
        .map_err(|m| ApiError::bad_request("invalid_parameter", m))?;
    let (format, json_array) = format_of(&req, q.format.as_deref())?;
    let body = crate::api::read_body(&req, payload, state.config.max_body_bytes).await?;
    let body = if json_array {
        array_to_ndjson(&body)?
    } else {
        body.to_vec()
    };
    let answer = {
        let st = state.clone().into_inner();
        let bounds = ctx.bounds;
        state
            .offload(async move {
                let chunk = decode(body, format, &preset, bounds, &source)?;
                let ctx = st.ingest.as_ref().expect("ingest");
                commit(ctx, chunk, json_array, st.config.query_timeout()).await
            })
            .await?
    };
    if let Some(p) = &path {
        if let Err(error) = store_answer(p, &answer) {
            tracing::error!(%error, "cannot store the answer of an idempotent ingest; a retry reports its records as duplicates");
        }
        maybe_prune(&state);
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// A fixed record for a quarantined one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resubmission {
    /// The record in canonical field names (`transaction_id`, `account_id`,
    /// `amount`, `currency`, `direction`, `description`,
    /// `transaction_date`, …), as one NDJSON line would carry it.
    #[schema(value_type = Object)]
    pub record: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResubmitAnswer {
    /// The quarantined row's id.
    pub id: String,
    /// `accepted` or `duplicate` (already stored): the row is resolved;
    /// `quarantined`: the fix was refused too (see `result`), the row stays open.
    pub status: String,
    pub resolved: bool,
    pub result: RecordResult,
}

/// Re-submit a fixed record in place of a quarantined one: it is ingested
/// under the row's source; once stored, the row is resolved (no longer
/// open in the quarantine list).
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/resubmit", tag = "quarantine",
    params(("id" = String, Path, description = "The id from the quarantine list")),
    request_body = Resubmission,
    responses((status = 200, body = ResubmitAnswer)),
    security(("bearer" = [])))]
pub(crate) async fn resubmit(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&req, Role::Ingest)?;
    let Some(ctx) = &state.ingest else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "ingest is not available in this process",
        ));
    };
    let id = id.into_inner();
    let body: Resubmission =
        crate::api::json_body(&req, payload, state.config.max_body_bytes).await?;
    let Some(row) = crate::api::find_quarantined(&state, &id).await? else {
        return Err(ApiError::not_found(format!(
            "no quarantined input with id {id:?}"
        )));
    };
    let line: Vec<u8> = body
        .record
        .get()
        .bytes()
        .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .chain(std::iter::once(b'\n'))
        .collect();
    let preset = (ctx.preset)("canonical").map_err(ApiError::internal)?;
    let st = state.clone().into_inner();
    let bounds = ctx.bounds;
    let source = row.source.clone();
    let answer = state
        .offload(async move {
            let chunk = decode(line, Format::Ndjson, &preset, bounds, &source)?;
            let ctx = st.ingest.as_ref().expect("ingest");
            commit(ctx, chunk, false, st.config.query_timeout()).await
        })
        .await?;
    let Some(result) = answer.results.into_iter().next() else {
        return Err(ApiError::bad_request("invalid_body", "the record is empty"));
    };
    let resolved = result.status != "quarantined";
    if resolved {
        let st = state.clone().into_inner();
        let (id2, source, txid) = (
            id.clone(),
            row.source.clone(),
            result.transaction_id.clone(),
        );
        state
            .offload(async move {
                let _one = st.corrections.lock().await;
                crate::api::mark_resolved(&st.data_dir, &id2, &source, txid.as_deref()).await
            })
            .await?;
    }
    Ok(HttpResponse::Ok().json(ResubmitAnswer {
        id,
        status: result.status.clone(),
        resolved,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_become_ndjson_with_every_digit() {
        let out = array_to_ndjson(
            br#"[{"transaction_id": "a",
  "amount": 12345678901234567.89}, {"x": "line\nbreak"}]"#,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("12345678901234567.89"), "{text}");
        assert!(lines[1].contains(r#""line\nbreak""#));
        assert!(array_to_ndjson(b"{\"a\": 1}").is_err());
    }

    #[test]
    fn expired_answers_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        for (name, aged) in [
            ("a.json", true),
            ("b.json", false),
            ("c.json.tmp", true),
            ("keep.txt", true),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, "{}").unwrap();
            if aged {
                std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
        let ttl = std::time::Duration::from_secs(86_400);
        assert_eq!(prune_answers(dir.path(), ttl).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["b.json", "keep.txt"]);
        assert_eq!(prune_answers(&dir.path().join("missing"), ttl).unwrap(), 0);
    }

    #[test]
    fn token_bucket() {
        let l = RateLimiter::default();
        assert!(l.take("a", 1.0, 2).is_ok());
        assert!(l.take("a", 1.0, 2).is_ok());
        let wait = l.take("a", 1.0, 2).unwrap_err();
        assert!(wait > 0.0 && wait <= 1.0);
        assert!(l.take("b", 1.0, 2).is_ok(), "per token");
    }
}
