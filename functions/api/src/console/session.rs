//! The console's session cookie, signing in with a key, signing out and choosing the space
//! (the protocol is in the module doc of `console`).

use std::collections::HashMap;

use maud::html;
use serde::{Deserialize, Serialize};
use switchyard::domain::ids::SpaceId;
use switchyard::runtime::Platform;
use switchyard::runtime::http::{Request, Response, header};
use switchyard::usecases::auth::{self, Principal, SessionSubject};
use switchyard::usecases::signed::{self, SigningKey};

use super::{BASE, Ctx, Failure, PageResult, view};

/// How long a session lasts: a working day.
pub const SESSION_SECS: i64 = 8 * 3600;
/// The cookie's name.
pub const COOKIE: &str = "swy_console";
/// The purpose the session key is derived for (`usecases::signed`).
const PURPOSE: &str = "console session";
/// Longest key a login form may send (longer ones are no key of ours).
const MAX_KEY_LEN: usize = 512;

/// What the cookie holds, signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub sub: SessionSubject,
    /// The space acted on (`None`: the platform admin has not chosen one, or a member of
    /// several spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<SpaceId>,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// The token every form must send back.
    pub csrf: String,
}

impl Session {
    pub fn new(sub: SessionSubject, space: Option<SpaceId>, now_ms: i64) -> Session {
        Session { sub, space, exp: now_ms / 1000 + SESSION_SECS, csrf: hex::encode(rand::random::<[u8; 16]>()) }
    }

    /// Whether a form's `csrf` field is this session's token.
    pub fn csrf_matches(&self, form: &HashMap<String, String>) -> bool {
        form.get("csrf").is_some_and(|given| signed::same(given, &self.csrf))
    }
}

/// No valid session: sign in.
pub struct NoSession;

async fn key(p: &Platform) -> Option<SigningKey> {
    SigningKey::of(p.admin_key.as_ref(), PURPOSE).await.ok()
}

fn cookie_value<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The session the request carries and the caller it stands for now.
pub async fn current(p: &Platform, req: &Request) -> Result<(Session, Principal), NoSession> {
    let token = cookie_value(req, COOKIE).ok_or(NoSession)?;
    let key = key(p).await.ok_or(NoSession)?;
    let session: Session = signed::open(key.as_bytes(), token).ok_or(NoSession)?;
    if session.exp <= p.now_ms() / 1000 {
        return Err(NoSession);
    }
    let who = auth::resume(p.auth(), &session.sub, session.space.clone()).await.map_err(|_| NoSession)?;
    Ok((session, who))
}

/// Whether the request came to a loopback host (the dev server), where cookies cannot be
/// `Secure` over plain HTTP.
fn loopback(req: &Request) -> bool {
    let host = header(req, "host").unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn cookie(req: &Request, value: &str, max_age: i64) -> String {
    let secure = if loopback(req) { "" } else { "; Secure" };
    format!("{COOKIE}={value}; Path={BASE}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// A redirect that sets the session.
pub async fn start(p: &Platform, req: &Request, session: &Session, to: &str) -> Response {
    let Some(key) = key(p).await else {
        return view::error_page(503, "No admin key is configured, so no session can be signed.");
    };
    let token = signed::sign(key.as_bytes(), session);
    let mut response = view::redirect(to);
    if let Ok(v) = http::HeaderValue::from_str(&cookie(req, &token, SESSION_SECS)) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
    response
}

/// Where a request without a session goes: the login page (a page view) or a 401 (a script's
/// fetch, or a form post whose session expired).
pub fn to_login(req: &Request) -> Response {
    if req.method() == http::Method::GET && header(req, "x-console-fetch").is_none() {
        view::redirect(&format!("{BASE}/login"))
    } else {
        view::error_page(401, "Your session has ended: sign in again.")
    }
}

/// The login page.
pub fn login_form(p: &Platform, _req: &Request, error: Option<(u16, &str)>) -> Response {
    let oidc = super::oidc::configured(p);
    let body = html! {
        main.login {
            h1 { "Sign in to Switchyard" }
            @if let Some((_, message)) = error {
                p.error role="alert" { (message) }
            }
            form method="post" action={(BASE) "/login"} {
                label for="key" { "API key" }
                input #key name="key" type="password" autocomplete="current-password" required maxlength="512";
                label for="space" { "Space (only with the admin key)" }
                input #space name="space" type="text" autocomplete="off" maxlength="64";
                button type="submit" { "Sign in" }
            }
            @if oidc {
                p { a.button href={(BASE) "/login/oidc"} { "Sign in with your identity provider" } }
            }
            p.muted {
                "Running the dev server? It printed the demo space's key (" code { "swy_…" } ") when it started."
            }
        }
    };
    view::html(error.map(|(status, _)| status).unwrap_or(200), view::bare("Sign in", body))
}

/// `POST /console/login`: a key (and for the admin key, a space).
pub async fn login(p: &Platform, req: &Request) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(req.body()).into_owned().collect();
    let key = form.get("key").map(|k| k.trim()).unwrap_or("");
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return login_form(p, req, Some((400, "Enter an API key.")));
    }
    let space = match form.get("space").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match SpaceId::parse(text) {
            Ok(space) => Some(space),
            Err(e) => return login_form(p, req, Some((400, &format!("That space id is not valid: {e}")))),
        },
    };
    match auth::sign_in_with_key(p.auth(), key, space.clone()).await {
        Ok((who, sub)) => {
            let session = Session::new(sub, who.space.clone(), p.now_ms());
            start(p, req, &session, &format!("{BASE}/")).await
        }
        Err(switchyard::usecases::Error::Unavailable { .. }) => {
            login_form(p, req, Some((503, "The store is unavailable: try again in a moment.")))
        }
        Err(_) => login_form(p, req, Some((401, "That key is not valid (or not for that space)."))),
    }
}

/// `POST /console/logout`: the cookie is cleared.
pub fn logout(req: &Request) -> Response {
    let mut response = view::redirect(&format!("{BASE}/login"));
    if let Ok(v) = http::HeaderValue::from_str(&cookie(req, "", 0)) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
    response
}

/// `POST /console/space`: act on another space (the admin key, or a member of several).
pub async fn switch_space(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let text = form.get("space").map(|s| s.trim()).unwrap_or("");
    let space = SpaceId::parse(text).map_err(|e| Failure::Request(400, format!("That space id is not valid: {e}")))?;
    auth::resume(c.p.auth(), &c.session.sub, Some(space.clone())).await?;
    if c.who.is_platform_admin() {
        switchyard::store::tenants::require_space(c.p.db(), &space).await?;
    }
    let session = Session { space: Some(space), ..c.session.clone() };
    Ok(start(c.p, &c.req, &session, &format!("{BASE}/")).await)
}
