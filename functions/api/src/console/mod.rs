//! The console: the web dashboard under `/console`, served by the `api` function (and so by the
//! dev server, whose `/` redirects here). Server-rendered HTML (`maud`, checked at compile
//! time), a small script of our own for live updates and confirmations, no build step.
//!
//! Signing in and the session:
//! - `GET /console/login` shows the form; `POST /console/login` takes an API key (or the admin
//!   key with the space to act on), or `GET /console/login/oidc` starts an OpenID Connect
//!   authorization-code flow with PKCE (`oidc`).
//! - The session is the cookie `swy_console` (`HttpOnly`, `SameSite=Lax`, `Path=/console`,
//!   `Secure` unless the request's host is loopback): a token signed with a key derived from the
//!   admin key (`usecases::signed`, purpose `console session`) holding who signed in
//!   (`auth::SessionSubject`: a key's id, never the key), the space acted on, its expiry
//!   ([`SESSION_SECS`]) and a random CSRF token. Every request checks the subject again
//!   (`auth::resume`): a revoked or expired key, a removed member, a rotated admin key end it.
//! - Every `POST` carries the session's CSRF token in the form field `csrf`; without it, or with
//!   another, it is a 403 and nothing changes.
//!
//! Pages read and write through `routes::perform_admitted`, as API requests of the signed-in
//! caller: the same handlers, permission checks and audit records, so a viewer's forged write
//! is refused by the operation itself. A page view or a form is one API call of the minute for
//! the quota, counted on the tenant its path names (else the space), however many operations
//! it reads. Write controls are shown only to callers whose role allows them. A `POST`
//! whose `Origin` or `Sec-Fetch-Site` says it came from another site is refused before anything
//! runs, the login included.
//!
//! Every page is sent with a strict Content-Security-Policy (no inline script or style,
//! `frame-ancestors 'none'`), `nosniff`, `no-store`; assets (`assets`) have content-hashed
//! names and are cached for a year.

mod assets;
mod connectors;
mod executions;
mod flows;
mod graph;
mod oidc;
mod overview;
mod session;
mod settings;
mod tenants;
mod usage;
mod view;

use http::{HeaderValue, Method};
use maud::Markup;
use serde_json::Value;
use switchyard::domain::access::Permission;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, error_allowing, query};
use switchyard::usecases::auth::Principal;
use switchyard::usecases::quotas;

pub use session::SESSION_SECS;
use session::Session;

/// The path every console URL starts with.
pub const BASE: &str = "/console";

/// One request of a signed-in user.
pub struct Ctx<'a> {
    pub p: &'a Platform,
    pub who: Principal,
    pub session: Session,
    pub req: Request,
    pub request_id: String,
}

/// What an operation of the API answered.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error message, for a page to show.
    pub fn message(&self) -> String {
        self.body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("status {}", self.status))
    }

    /// The body of a success, or the error as a page.
    pub fn into_ok(self) -> Result<Value, Failure> {
        if self.ok() { Ok(self.body) } else { Err(Failure::Api(self)) }
    }
}

/// Why a page could not be shown.
pub enum Failure {
    /// An operation it needed failed: shown with the API's status and message.
    Api(Answer),
    /// The request itself is wrong (a bad form, an unknown page).
    Request(u16, String),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::Api(Answer { status: e.status(), body: e.body() })
    }
}

impl From<switchyard::usecases::Error> for Failure {
    fn from(e: switchyard::usecases::Error) -> Self {
        Failure::from(AppError::from(e))
    }
}

impl From<switchyard::store::Error> for Failure {
    fn from(e: switchyard::store::Error) -> Self {
        Failure::from(AppError::from(e))
    }
}

pub type PageResult = Result<Response, Failure>;

impl Ctx<'_> {
    pub fn allows(&self, permission: Permission) -> bool {
        self.who.allows(permission)
    }

    pub fn query(&self) -> std::collections::HashMap<String, String> {
        query(&self.req)
    }

    /// Run one API operation as the signed-in caller: `path` after `/api/v1/`, `query` pairs
    /// and a JSON body.
    pub async fn api(&self, method: Method, path: &[&str], params: &[(&str, &str)], body: Option<&Value>) -> Answer {
        let body = body.map(|v| ("application/json", bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())));
        self.api_with(method, path, params, body, &[]).await
    }

    /// [`Ctx::api`] with a body of any media type and extra headers (`If-Match`).
    pub async fn api_with(
        &self,
        method: Method,
        path: &[&str],
        params: &[(&str, &str)],
        body: Option<(&str, bytes::Bytes)>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut uri = String::from("/api/v1");
        for part in path {
            uri.push('/');
            uri.push_str(&view::seg(part));
        }
        let pairs: Vec<(&str, &str)> = params.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
        if !pairs.is_empty() {
            uri.push('?');
            uri.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish());
        }
        let mut builder = http::Request::builder().method(method).uri(&uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let bytes = match body {
            Some((media, bytes)) => {
                builder = builder.header(http::header::CONTENT_TYPE, media);
                bytes
            }
            None => bytes::Bytes::new(),
        };
        let Ok(req) = builder.body(bytes) else {
            return Answer { status: 400, body: serde_json::json!({"error": {"message": "not a valid request"}}) };
        };
        let response =
            match crate::routes::perform_admitted(self.p, self.who.clone(), req, path, &self.request_id).await {
                Ok(response) => response,
                Err(e) => error_allowing(&e, ""),
            };
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        Answer { status, body }
    }

    pub async fn get(&self, path: &[&str], params: &[(&str, &str)]) -> Result<Value, Failure> {
        self.api(Method::GET, path, params, None).await.into_ok()
    }

    /// The form fields of a POST (`application/x-www-form-urlencoded`), last one wins.
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(self.req.body()).into_owned().collect()
    }

    /// The form field `json`, parsed (a 400 naming the problem otherwise).
    pub fn json_field(&self) -> Result<Value, Failure> {
        let text = self.form().get("json").cloned().unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| Failure::Request(400, format!("That is not valid JSON: {e}")))
    }

    /// A page, with the layout.
    pub fn page(&self, title: &str, nav: view::Nav, body: Markup) -> Response {
        view::html(200, view::layout(self, title, nav, body))
    }
}

/// Handle a request under `/console`.
pub async fn handle(p: &Platform, req: Request, segs: &[String]) -> Response {
    let segs: Vec<&str> = segs.iter().skip(1).map(String::as_str).collect();
    let method = req.method().clone();
    // What needs no session.
    match (&method, segs.as_slice()) {
        (&Method::GET, ["assets", name]) => return assets::serve(name),
        (&Method::GET, ["login"]) => return session::login_form(p, &req, None),
        (&Method::POST, ["login"]) => return session::login(p, &req).await,
        (&Method::GET, ["login", "oidc"]) => return oidc::start(p, &req).await,
        (&Method::GET, ["login", "oidc", "callback"]) => return oidc::callback(p, &req).await,
        _ => {}
    }
    let (session, who) = match session::current(p, &req).await {
        Ok(found) => found,
        Err(session::NoSession) => return session::to_login(&req),
    };
    if method == Method::POST {
        let form = url::form_urlencoded::parse(req.body()).into_owned().collect();
        if !session::same_origin(p, &req) || !session.csrf_matches(&form) {
            return view::error_page(
                403,
                "This form is out of date or was not sent by the console: reload the page and try again.",
            );
        }
        if segs.as_slice() == ["logout"] {
            return session::logout(p, &req, &session).await;
        }
    }
    let request_id = switchyard::domain::ids::ulid_at(p.now_ms()).to_string();
    // A page view (or a form) is one API call of the minute, on the tenant its path names, else
    // on the space: the per-tenant limits hold, and a page that reads many operations, or a
    // running execution's page refreshing itself, costs no more than one call each time.
    let page_tenant = match segs.as_slice() {
        ["tenants", t, ..] | ["flows", "tenant", t, ..] => Some(*t),
        _ => None,
    };
    if let Err(e) = quotas::admit_api_request(&p.engine, &who, page_tenant).await {
        let e = AppError::from(e);
        let mut refused = view::error_page(e.status(), e.body()["error"]["message"].as_str().unwrap_or("refused"));
        if let AppError::TooManyRequests { retry_after_secs, .. } = e {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                refused.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        return refused;
    }
    let ctx = Ctx { p, who, session, req, request_id };
    let result = match (&ctx.who.space, segs.as_slice()) {
        // A member of several spaces chooses one first.
        (None, ["space"]) | (Some(_), _) => route(&ctx, &method, &segs).await,
        (None, _) => Ok(session::choose_space(&ctx)),
    };
    let mut response = match result {
        Ok(response) => response,
        Err(Failure::Api(answer)) => {
            if answer.status >= 500 {
                tracing::warn!(status = answer.status, "console page failed");
            }
            view::failure_page(&ctx, answer.status, &answer.message())
        }
        Err(Failure::Request(status, message)) => view::failure_page(&ctx, status, &message),
    };
    if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn route(c: &Ctx<'_>, method: &Method, segs: &[&str]) -> PageResult {
    let get = method == Method::GET;
    let post = method == Method::POST;
    match segs {
        [] if get => overview::page(c).await,
        ["space"] if post => session::switch_space(c).await,
        ["executions"] if get => executions::list(c).await,
        ["tenants", t, "executions", e] if get => executions::page(c, t, e).await,
        ["tenants", t, "executions", e, "cancel"] if post => executions::cancel(c, t, e).await,
        ["tenants", t, "executions", e, "rerun"] if post => executions::rerun(c, t, e).await,
        ["events"] if get => executions::events(c).await,
        ["dlq"] if get => executions::dlq(c).await,
        ["dlq", "replay"] if post => executions::replay(c).await,
        ["tenants"] if get => tenants::list(c).await,
        ["tenants"] if post => tenants::create(c).await,
        ["tenants", t] if get => tenants::page(c, t).await,
        ["tenants", t, "status"] if post => tenants::set_status(c, t).await,
        ["tenants", t, "quotas"] if post => tenants::put_json(c, t, "quotas").await,
        ["tenants", t, "config"] if post => tenants::put_json(c, t, "config").await,
        ["flows"] if get => flows::list(c).await,
        ["flows", "new"] if get => flows::new(c).await,
        ["flows"] if post => flows::create(c).await,
        ["flows", "space", f, rest @ ..] => flows::route(c, method, None, f, rest).await,
        ["flows", "tenant", t, f, rest @ ..] => flows::route(c, method, Some(t), f, rest).await,
        ["connectors"] if get => connectors::catalog(c).await,
        ["tenants", t, "connectors", k] if post => connectors::set_enabled(c, t, k).await,
        ["tenants", t, "connectors", k, "settings"] if post => connectors::set_settings(c, t, k).await,
        ["connectors", "oauth-app"] if post => connectors::set_oauth_app(c).await,
        ["usage"] if get => usage::page(c).await,
        ["settings"] if get => settings::page(c).await,
        ["settings", "keys"] if post => settings::create_key(c).await,
        ["settings", "keys", k, "revoke"] if post => settings::revoke_key(c, k).await,
        ["settings", "audit"] if get => settings::audit(c).await,
        ["settings", "members"] if post => settings::put_member(c).await,
        ["settings", "members", m, "remove"] if post => settings::remove_member(c, m).await,
        ["settings", "config"] if post => settings::put_json(c, "config").await,
        ["settings", "quotas"] if post => settings::put_json(c, "quotas").await,
        ["settings", "alerts"] if post => settings::put_alert(c).await,
        ["settings", "alerts", a, "delete"] if post => settings::delete_alert(c, a).await,
        _ if get || post => Err(Failure::Request(404, "There is no such page in the console.".into())),
        _ => Err(Failure::Request(405, "Only GET and POST are used in the console.".into())),
    }
}

/// `/` of the dev server: to the console.
pub fn redirect_home() -> Response {
    view::redirect(&format!("{BASE}/"))
}
