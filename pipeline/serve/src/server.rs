//! The HTTP server: state shared by the handlers, authorization, limits,
//! CORS, JSON errors for every refusal, start and graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use finopsia_core::sink::Metrics;
use finopsia_store::snapshot::QueryService;

use crate::config::HttpConfig;
use crate::error::{ApiError, Error, Result};
use crate::tokens::{Principal, Role, TokenStore};

/// The state of one component, for `/ready`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Component {
    /// `engine`, `store`, `source`, `sink` or `http`.
    pub kind: String,
    pub name: String,
    pub ready: bool,
    /// Why it is not ready, or what it is doing.
    pub detail: Option<String>,
}

/// Reports the service's components (engine, sources, sinks) for `/ready`.
pub type ComponentsFn = Arc<dyn Fn() -> Vec<Component> + Send + Sync>;

/// What the service gives the server.
pub struct ServeContext {
    pub data_dir: PathBuf,
    pub config: HttpConfig,
    /// Reads on published snapshots.
    pub queries: QueryService,
    /// Window tables and their group keys.
    pub windows: Vec<(String, Vec<String>)>,
    pub metrics: Arc<Metrics>,
    pub components: ComponentsFn,
    /// HTTP ingest (`None`: the ingest endpoints answer 503).
    pub ingest: Option<crate::ingest::IngestContext>,
}

/// Shared by every handler.
pub struct AppState {
    pub data_dir: PathBuf,
    pub config: HttpConfig,
    pub queries: QueryService,
    pub tokens: TokenStore,
    pub windows: Vec<(String, Vec<String>)>,
    pub metrics: Arc<Metrics>,
    pub components: ComponentsFn,
    pub probes_open: bool,
    /// The service's runtime: queries run there, not on the server's
    /// per-worker event loops.
    pub runtime: tokio::runtime::Handle,
    /// One category correction at a time (each is a commit).
    pub corrections: tokio::sync::Mutex<()>,
    pub openapi: String,
    pub ingest: Option<crate::ingest::IngestContext>,
    pub limiter: crate::ingest::RateLimiter,
    pub in_flight: crate::ingest::InFlight,
    /// When expired idempotency answers were last removed.
    pub pruned: std::sync::Mutex<Option<std::time::Instant>>,
    /// The web dashboard's login link and sessions (`None`: turned off).
    pub dashboard: Option<crate::dashboard::Dashboard>,
    /// Transactions in page order for the snapshot last served.
    pub tx_index: crate::index::TxIndexCache,
    /// Forecast relations by series for the snapshot last served.
    pub series: crate::grouped::GroupedCache,
}

impl AppState {
    /// Checks the request's bearer token and role.
    /// Without an `Authorization` header, the dashboard's session cookie
    /// counts (see [`crate::dashboard`]).
    pub fn authorize(&self, req: &HttpRequest, need: Role) -> Result<Principal, ApiError> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            if let Some(p) = self.session_principal(req)? {
                return check_role(p, need);
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs a token: send `Authorization: Bearer <token>` (create one with `finopsia token create --role read`)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let principal = self.tokens.verify(token).map_err(ApiError::internal)?;
        let Some(p) = principal else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown or revoked token",
            ));
        };
        check_role(p, need)
    }

    /// Probes are open or need a token of any role (see `http.probes`).
    pub fn authorize_probe(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self.probes_open {
            Ok(())
        } else {
            self.authorize(req, Role::Read).map(|_| ())
        }
    }

    /// Runs `fut` on the service's runtime with the query timeout.
    pub async fn offload<T, F>(&self, fut: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let timeout = self.config.query_timeout();
        match self.runtime.spawn(tokio::time::timeout(timeout, fut)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the query took longer than http.query_timeout ({})",
                    self.config.query_timeout
                ),
            )),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// The page size asked for, checked against the limits.
    pub fn page_size(&self, limit: Option<u64>) -> Result<usize, ApiError> {
        match limit {
            None => Ok(self.config.default_page_size),
            Some(0) => Err(ApiError::bad_request(
                "invalid_parameter",
                "limit must be at least 1",
            )),
            Some(n) if n > self.config.max_page_size as u64 => Err(ApiError::bad_request(
                "page_too_large",
                format!(
                    "limit {n} is above the largest page, {} (http.max_page_size)",
                    self.config.max_page_size
                ),
            )),
            Some(n) => Ok(n as usize),
        }
    }
}

fn check_role(p: Principal, need: Role) -> Result<Principal, ApiError> {
    if p.role < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this endpoint needs the {} role; token {} has {}",
                need.as_str(),
                p.id,
                p.role.as_str()
            ),
        ));
    }
    Ok(p)
}

/// A running server.
pub struct Server {
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Server {
    /// Stops accepting connections, lets requests in flight finish (at most
    /// 5 s) and returns.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        match self.task.await {
            Ok(Err(error)) => tracing::error!(%error, "http server failed"),
            Err(error) => tracing::error!(%error, "http server panicked"),
            Ok(Ok(())) => {}
        }
    }
}

fn json_error(err: impl std::fmt::Display, status: StatusCode, code: &'static str) -> ApiError {
    ApiError::new(status, code, err.to_string())
}

fn json_payload_error(err: &JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {limit} bytes (http.max_body_bytes)"),
            )
        }
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes (http.max_body_bytes)"),
        ),
        other => json_error(other, StatusCode::BAD_REQUEST, "invalid_json"),
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let dashboard = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.dashboard.is_some());
    let allowed: Vec<&str> = crate::api::ROUTES
        .iter()
        .chain(if dashboard {
            crate::dashboard::ROUTES
        } else {
            &[]
        })
        .filter(|(_, path)| actix_web::dev::ResourceDef::new(*path).is_match(req.path()))
        .map(|(method, _)| *method)
        .collect();
    if !allowed.is_empty() {
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allowed.join(", ")))
            .json(crate::error::ErrorBody {
                error: crate::error::ErrorDetail {
                    code: "method_not_allowed".into(),
                    message: format!(
                        "{} {}: this path answers {}",
                        req.method(),
                        req.path(),
                        allowed.join(", ")
                    ),
                },
            }));
    }
    Err(ApiError::not_found(format!(
        "no endpoint {} {} (the API is under /api/v1; see /api/v1/openapi.json)",
        req.method(),
        req.path()
    )))
}

type BoxedResponse = Pin<Box<dyn Future<Output = actix_web::Result<ServiceResponse<BoxBody>>>>>;

/// Notes the address a server listens on in `<data_dir>/state/<name>`
/// (`{"addr", "pid"}`, replaced atomically).
pub(crate) fn write_note(data_dir: &std::path::Path, name: &str, addr: &SocketAddr) -> Result<()> {
    let state_dir = data_dir.join("state");
    let note = serde_json::json!({ "addr": addr.to_string(), "pid": std::process::id() });
    std::fs::create_dir_all(&state_dir).map_err(|e| Error::Io(state_dir.clone(), e))?;
    let path = state_dir.join(name);
    let tmp = state_dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, note.to_string()).map_err(|e| Error::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::Io(path.clone(), e))
}

/// Starts the server on `ctx.config.addr` and writes the address in use to
/// `<data_dir>/state/http.json`.
pub async fn start(ctx: ServeContext) -> Result<Server> {
    let addr = ctx.config.socket_addr()?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::Config(format!(
            "http.addr {addr}: cannot listen there: {e} (is another service using the port? set http.addr or --http-addr, or http.enabled = false)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Io(PathBuf::from(addr.to_string()), e))?;
    let openapi = crate::openapi::document(&ctx.windows, ctx.config.max_page_size);
    let (dashboard, login_url) = if ctx.config.dashboard {
        let (d, token) = crate::dashboard::Dashboard::new(&ctx.data_dir, ctx.config.session_ttl())?;
        let host = if bound.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
        } else {
            bound
        };
        let url = format!("http://{host}/login?token={token}");
        d.write_login_file(&url)?;
        (Some(d), Some(url))
    } else {
        (None, None)
    };
    let state = web::Data::new(AppState {
        probes_open: ctx.config.probes_open(&bound),
        tokens: TokenStore::open(&ctx.data_dir),
        data_dir: ctx.data_dir.clone(),
        queries: ctx.queries,
        windows: ctx.windows,
        metrics: ctx.metrics,
        components: ctx.components,
        runtime: tokio::runtime::Handle::current(),
        corrections: tokio::sync::Mutex::new(()),
        openapi,
        config: ctx.config.clone(),
        ingest: ctx.ingest,
        limiter: Default::default(),
        in_flight: Default::default(),
        pruned: Default::default(),
        dashboard,
        tx_index: Default::default(),
        series: Default::default(),
    });
    let with_dashboard = ctx.config.dashboard;
    let limit = ctx.config.max_body_bytes;
    let cors: Arc<Vec<String>> = Arc::new(ctx.config.cors_origins.clone());
    let workers = ctx.config.workers;
    let server = HttpServer::new(move || {
        let cors = cors.clone();
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(move |err, _| json_payload_error(&err, limit).into()),
            )
            .app_data(web::PayloadConfig::new(limit))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                json_error(err, StatusCode::BAD_REQUEST, "invalid_parameter").into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                json_error(err, StatusCode::BAD_REQUEST, "invalid_parameter").into()
            }))
            .configure(crate::api::routes)
            .configure(|cfg| {
                if with_dashboard {
                    crate::dashboard::routes(cfg)
                }
            })
            .default_service(web::to(not_found))
            .wrap_fn(move |req: ServiceRequest, srv| -> BoxedResponse {
                let started = Instant::now();
                let origin = req
                    .headers()
                    .get(header::ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let allowed = origin.filter(|o| cors.iter().any(|c| c == "*" || c == o));
                if let Some(origin) = allowed.clone().filter(|_| req.method() == Method::OPTIONS) {
                    let res = HttpResponse::NoContent()
                        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
                        .insert_header((
                            header::ACCESS_CONTROL_ALLOW_METHODS,
                            "GET, POST, PUT, DELETE, OPTIONS",
                        ))
                        .insert_header((
                            header::ACCESS_CONTROL_ALLOW_HEADERS,
                            "Authorization, Content-Type, Idempotency-Key",
                        ))
                        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                        .insert_header((header::VARY, "Origin"))
                        .finish();
                    return Box::pin(async move { Ok(req.into_response(res)) });
                }
                let method = req.method().clone();
                let path = req.path().to_string();
                // The handler's events are in an `http` span (method and
                // path only: never headers or query, which may carry
                // tokens or login links).
                let span = tracing::info_span!("http", %method, %path);
                let fut = {
                    let _entered = span.enter();
                    srv.call(req)
                };
                Box::pin(tracing::Instrument::instrument(
                    async move {
                        let mut res = fut.await?.map_into_boxed_body();
                        if let Some(o) = allowed {
                            if let Ok(v) = HeaderValue::from_str(&o) {
                                res.headers_mut()
                                    .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                                res.headers_mut()
                                    .insert(header::VARY, HeaderValue::from_static("Origin"));
                            }
                        }
                        // Never the headers (they carry tokens), only what was asked.
                        tracing::debug!(
                            status = res.status().as_u16(),
                            elapsed_us = started.elapsed().as_micros() as u64,
                            "http request"
                        );
                        Ok(res)
                    },
                    span,
                ))
            })
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(|e| Error::Io(PathBuf::from(bound.to_string()), e))?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    write_note(&ctx.data_dir, "http.json", &bound)?;
    tracing::info!(
        addr = %bound,
        probes_open = ctx.config.probes_open(&bound),
        "http: REST API listening on http://{bound}/api/v1 (OpenAPI: /api/v1/openapi.json)"
    );
    if let Some(url) = login_url {
        // For the person who started the service, as Jupyter does; not a
        // log line (the link is a one-time secret, also in
        // state/dashboard-login).
        println!("dashboard: {url}");
        tracing::info!(
            "dashboard: http://{bound}/ (the one-time login link is printed on stdout and in {})",
            ctx.data_dir.join("state").join("dashboard-login").display()
        );
    }
    Ok(Server {
        handle,
        task,
        addr: bound,
    })
}
