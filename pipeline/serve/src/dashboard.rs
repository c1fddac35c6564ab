//! The built-in web dashboard: one page (HTML, CSS, JavaScript and the
//! uPlot charting library, all embedded in the binary, nothing fetched from
//! elsewhere) that reads and writes only through the REST API.
//!
//! Logging in: at start the service makes a one-time login token and
//! prints the dashboard's URL with it (`/login?token=…`, as Jupyter does);
//! the same URL is written to `<data_dir>/state/dashboard-login` (mode 0600)
//! for whoever runs the service in the background. Opening it once sets a
//! session cookie (HttpOnly, SameSite=Strict) with the `admin` role and
//! removes the file; the link does not work a second time. Anyone with an
//! API token (`finopsia token create`) can also log in with it on the login
//! page: that session has the token's role and ends when the token is
//! revoked.
//!
//! Cross-site requests: besides SameSite=Strict, every state-changing
//! request made with the session cookie must carry the session's CSRF
//! token in `X-CSRF-Token` (the page has it in a `<meta>` element), and an
//! `Origin` header, when sent, must be this server's.
//!
//! State: sessions live in this process's memory only (a restart logs
//! everyone out; the next start prints a new login link). Nothing the
//! dashboard does is committed anywhere except through the API's own
//! writes (corrections, re-submissions).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Error, Result};
use crate::server::AppState;
use crate::tokens::{hash_token, random_bytes, Principal, Role, TokenStore};

/// The session cookie's name.
pub const COOKIE: &str = "finopsia_session";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
/// uPlot, the pinned npm release (see `web/vendor/uplot.lock`).
pub const UPLOT_JS: &[u8] = include_bytes!("../web/vendor/uPlot.iife.min.js");
pub const UPLOT_CSS: &[u8] = include_bytes!("../web/vendor/uPlot.min.css");
const UPLOT_LICENSE: &[u8] = include_bytes!("../web/vendor/uPlot.LICENSE");

/// The embedded files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        APP_JS.as_bytes(),
    ),
    ("app.css", "text/css; charset=utf-8", APP_CSS.as_bytes()),
    ("uplot.min.js", "text/javascript; charset=utf-8", UPLOT_JS),
    ("uplot.min.css", "text/css; charset=utf-8", UPLOT_CSS),
    ("uplot.LICENSE", "text/plain; charset=utf-8", UPLOT_LICENSE),
];

struct Session {
    role: Role,
    /// The API token it was opened with (`None`: the one-time link).
    token_id: Option<String>,
    name: String,
    csrf: String,
    expires: Instant,
}

/// Login link and sessions of one server.
pub struct Dashboard {
    /// Hash of the unused one-time login token.
    login: Mutex<Option<String>>,
    login_file: PathBuf,
    /// By hash of the cookie value.
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

fn random_text() -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

fn eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Dashboard {
    /// A dashboard with a fresh one-time login token; returns the token.
    pub fn new(data_dir: &Path, ttl: Duration) -> Result<(Dashboard, String)> {
        let token = format!("login_{}", random_text()?);
        Ok((
            Dashboard {
                login: Mutex::new(Some(hash_token(&token))),
                login_file: data_dir.join("state").join("dashboard-login"),
                sessions: Mutex::new(HashMap::new()),
                ttl,
            },
            token,
        ))
    }

    /// Writes the login URL for the owner (mode 0600, replaced atomically).
    pub fn write_login_file(&self, url: &str) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.login_file.parent().expect("state dir");
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let tmp = self.login_file.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::Io(tmp.clone(), e))?;
        f.write_all(format!("{url}\n").as_bytes())
            .map_err(|e| Error::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &self.login_file).map_err(|e| Error::Io(self.login_file.clone(), e))
    }

    /// Who a presented login token is: the one-time token (used up now) or
    /// an active API token.
    fn check_login(&self, tokens: &TokenStore, presented: &str) -> Result<Option<Principal>> {
        let presented = presented.trim();
        {
            let mut login = self.login.lock().expect("login");
            if let Some(h) = login.as_deref() {
                if eq(h, &hash_token(presented)) {
                    *login = None;
                    let _ = std::fs::remove_file(&self.login_file);
                    return Ok(Some(Principal {
                        id: "login-link".into(),
                        name: "one-time login link".into(),
                        role: Role::Admin,
                    }));
                }
            }
        }
        tokens.verify(presented)
    }

    /// Opens a session for `p`; returns the cookie value.
    fn open(&self, p: Principal) -> Result<String> {
        let value = random_text()?;
        let session = Session {
            role: p.role,
            token_id: (p.id != "login-link").then_some(p.id),
            name: p.name,
            csrf: random_text()?,
            expires: Instant::now() + self.ttl,
        };
        let mut sessions = self.sessions.lock().expect("sessions");
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(hash_token(&value), session);
        Ok(value)
    }

    /// The session of a request's cookie: its principal and CSRF token.
    fn session(
        &self,
        req: &HttpRequest,
        tokens: &TokenStore,
    ) -> Result<Option<(Principal, String)>> {
        let Some(value) = cookie(req, COOKIE) else {
            return Ok(None);
        };
        let key = hash_token(&value);
        let (role, token_id, name, csrf) = {
            let mut sessions = self.sessions.lock().expect("sessions");
            match sessions.get(&key) {
                Some(s) if s.expires > Instant::now() => {
                    (s.role, s.token_id.clone(), s.name.clone(), s.csrf.clone())
                }
                Some(_) => {
                    sessions.remove(&key);
                    return Ok(None);
                }
                None => return Ok(None),
            }
        };
        let principal = match token_id {
            None => Principal {
                id: "login-link".into(),
                name,
                role,
            },
            Some(id) => match tokens.active(&id)? {
                Some(p) => p,
                None => {
                    self.sessions.lock().expect("sessions").remove(&key);
                    return Ok(None);
                }
            },
        };
        Ok(Some((principal, csrf)))
    }

    fn close(&self, req: &HttpRequest) {
        if let Some(value) = cookie(req, COOKIE) {
            self.sessions
                .lock()
                .expect("sessions")
                .remove(&hash_token(&value));
        }
    }
}

/// A cookie's value from the `Cookie` headers.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether the request's `Origin` (when sent) is this server.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req.connection_info().host().to_string();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, h)| h))
        .is_some_and(|h| h == host)
}

impl AppState {
    /// The principal of the request's dashboard session, if it has one.
    /// A state-changing request with the cookie must carry the session's
    /// CSRF token and come from this origin (403 otherwise).
    pub(crate) fn session_principal(
        &self,
        req: &HttpRequest,
    ) -> Result<Option<Principal>, ApiError> {
        let Some(dashboard) = &self.dashboard else {
            return Ok(None);
        };
        let Some((p, csrf)) = dashboard
            .session(req, &self.tokens)
            .map_err(ApiError::internal)?
        else {
            return Ok(None);
        };
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !eq(sent, &csrf) || !same_origin(req) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a change made with the dashboard's session needs its X-CSRF-Token header and this server's origin",
                ));
            }
        }
        Ok(Some(p))
    }
}

/// The dashboard's routes (method, path), for 405 answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/assets/{name}"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login", web::get().to(login_link))
        .route("/login", web::post().to(login_form))
        .route("/logout", web::post().to(logout))
        .route("/assets/{name}", web::get().to(asset));
}

/// Headers of every page: no framing, no referrer (the login link carries a
/// token), nothing loaded from elsewhere.
fn page(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(html)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page: the dashboard for a session, else the login form (with
/// `error` shown).
fn render(session: Option<(&Principal, &str)>, error: Option<&str>) -> String {
    let (role, name, csrf) = match session {
        Some((p, csrf)) => (p.role.as_str(), p.name.as_str(), csrf),
        None => ("", "", ""),
    };
    INDEX_HTML
        .replace("{{ROLE}}", role)
        .replace("{{NAME}}", &html_escape(name))
        .replace("{{CSRF}}", csrf)
        .replace("{{LOGIN_ERROR}}", &html_escape(error.unwrap_or("")))
}

fn dashboard(state: &AppState) -> Result<&Dashboard, ApiError> {
    state
        .dashboard
        .as_ref()
        .ok_or_else(|| ApiError::not_found("the dashboard is off (http.dashboard = false)"))
}

async fn index(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let d = dashboard(&state)?;
    let session = d.session(&req, &state.tokens).map_err(ApiError::internal)?;
    Ok(page(
        StatusCode::OK,
        render(session.as_ref().map(|(p, c)| (p, c.as_str())), None),
    ))
}

fn set_cookie(value: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    ))
    .expect("cookie header")
}

const REFUSED: &str = "That login token was not accepted: it is wrong, revoked, or a one-time link that was already used. Restart the service for a new link, or log in with an API token (finopsia token create --role read).";

#[derive(serde::Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// `GET /login?token=…`: the printed link. Sets the cookie and redirects
/// to `/` (so the token leaves the address bar), or shows the login form
/// with the refusal (401).
async fn login_link(
    state: web::Data<AppState>,
    q: web::Query<LinkQuery>,
) -> Result<HttpResponse, ApiError> {
    let d = dashboard(&state)?;
    let Some(token) = q.token.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(page(StatusCode::OK, render(None, None)));
    };
    match d
        .check_login(&state.tokens, token)
        .map_err(ApiError::internal)?
    {
        Some(p) => {
            tracing::info!(principal = %p.id, role = p.role.as_str(), "dashboard: logged in");
            let value = d.open(p).map_err(ApiError::internal)?;
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/"))
                .insert_header((header::SET_COOKIE, set_cookie(&value, d.ttl)))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .finish())
        }
        None => {
            tracing::warn!("dashboard: a login with an unknown token was refused");
            Ok(page(StatusCode::UNAUTHORIZED, render(None, Some(REFUSED))))
        }
    }
}

#[derive(serde::Deserialize)]
struct LoginBody {
    token: String,
}

/// `POST /login` with `{"token": …}` (the login form): 204 with the cookie,
/// or 401.
async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let d = dashboard(&state)?;
    if !same_origin(&req) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "log in from this server's own page",
        ));
    }
    let body: LoginBody = crate::api::json_body(&req, payload, 4096).await?;
    match d
        .check_login(&state.tokens, &body.token)
        .map_err(ApiError::internal)?
    {
        Some(p) => {
            tracing::info!(principal = %p.id, role = p.role.as_str(), "dashboard: logged in");
            let value = d.open(p).map_err(ApiError::internal)?;
            Ok(HttpResponse::NoContent()
                .insert_header((header::SET_COOKIE, set_cookie(&value, d.ttl)))
                .finish())
        }
        None => {
            tracing::warn!("dashboard: a login with an unknown token was refused");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                REFUSED,
            ))
        }
    }
}

/// `POST /logout`: ends the session (needs its CSRF token).
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let d = dashboard(&state)?;
    if state.session_principal(&req)?.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not logged in",
        ));
    }
    d.close(&req);
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, set_cookie("", Duration::ZERO)))
        .finish())
}

async fn asset(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    dashboard(&state)?;
    let Some((_, ct, body)) = ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) else {
        return Err(ApiError::not_found(format!("no asset {:?}", name.as_str())));
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *ct))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(*body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_link_then_api_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenStore::open(dir.path());
        let (d, link) = Dashboard::new(dir.path(), Duration::from_secs(60)).unwrap();
        d.write_login_file("http://x/login?token=t").unwrap();
        assert!(d.check_login(&tokens, "login_wrong").unwrap().is_none());
        let p = d.check_login(&tokens, &link).unwrap().unwrap();
        assert_eq!(p.role, Role::Admin);
        assert!(!dir.path().join("state/dashboard-login").exists());
        assert!(
            d.check_login(&tokens, &link).unwrap().is_none(),
            "the link works once"
        );
        let (rec, token) = tokens.create(Role::Read, Some("viewer")).unwrap();
        assert_eq!(d.check_login(&tokens, &token).unwrap().unwrap().id, rec.id);
    }
}
