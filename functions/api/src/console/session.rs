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
    /// A random id: signing out records it as ended (`store::sessions`).
    pub sid: String,
    pub sub: SessionSubject,
    /// The space acted on (`None`: a member of several spaces who has not chosen one; the admin
    /// key names one to sign in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<SpaceId>,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// The token every form must send back.
    pub csrf: String,
}

impl Session {
    pub fn new(sub: SessionSubject, space: Option<SpaceId>, now_ms: i64) -> Session {
        Session {
            sid: hex::encode(rand::random::<[u8; 16]>()),
            sub,
            space,
            exp: now_ms / 1000 + SESSION_SECS,
            csrf: hex::encode(rand::random::<[u8; 16]>()),
        }
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

/// The value of cookie `name` in the request.
pub fn cookie_value<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
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
    // A store that cannot say is no session either: the login page then says it is down.
    if switchyard::store::sessions::ended(p.db(), &session.sid).await.unwrap_or(true) {
        return Err(NoSession);
    }
    let who = auth::resume(p.auth(), &session.sub, session.space.clone()).await.map_err(|_| NoSession)?;
    Ok((session, who))
}

/// Whether the request came to a loopback host (the dev server), where cookies cannot be
/// `Secure` over plain HTTP.
pub fn loopback(req: &Request) -> bool {
    let host = header(req, "host").unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The console's own origin: the public URL when one is set (behind a proxy the Host header
/// may be the proxy's), else the request's host, over HTTPS unless it is loopback.
pub fn origin(p: &Platform, req: &Request) -> String {
    match &p.settings.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let scheme = if loopback(req) { "http" } else { "https" };
            format!("{scheme}://{}", header(req, "host").unwrap_or("localhost"))
        }
    }
}

/// Cookies are `Secure` unless the console is served over plain HTTP on loopback.
pub fn secure_attribute(p: &Platform, req: &Request) -> &'static str {
    if origin(p, req).starts_with("https://") { "; Secure" } else { "" }
}

/// Whether a POST came from a page of the console itself: a browser says where a request comes
/// from (`Sec-Fetch-Site`, `Origin`); a cross-site form (a forged login, a forged write) is
/// refused before anything runs. A client that sends neither (curl) is let through: the CSRF
/// token still guards every form but the login.
pub fn same_origin(p: &Platform, req: &Request) -> bool {
    // `same-site` is a sibling subdomain: it gets a Lax cookie too, so it is refused as well.
    if header(req, "sec-fetch-site").is_some_and(|site| site == "cross-site" || site == "same-site") {
        return false;
    }
    match header(req, "origin") {
        None => true,
        Some(origin) => origin.eq_ignore_ascii_case(&origin_of(p, req)),
    }
}

/// [`origin`] as a browser writes it in `Origin`: without a path or a default port.
fn origin_of(p: &Platform, req: &Request) -> String {
    let full = origin(p, req);
    match url::Url::parse(&full) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => full,
    }
}

fn cookie(p: &Platform, req: &Request, value: &str, max_age: i64) -> String {
    let secure = secure_attribute(p, req);
    format!("{COOKIE}={value}; Path={BASE}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// A redirect that sets the session.
pub async fn start(p: &Platform, req: &Request, session: &Session, to: &str) -> Response {
    let Some(key) = key(p).await else {
        return view::error_page(503, "No admin key is configured, so no session can be signed.");
    };
    let token = signed::sign(key.as_bytes(), session);
    let mut response = view::redirect(to);
    if let Ok(v) = http::HeaderValue::from_str(&cookie(p, req, &token, SESSION_SECS)) {
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
    if !same_origin(p, req) {
        return view::error_page(403, "Sign in from the console's own login page.");
    }
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
            if who.is_platform_admin() {
                let Some(space) = &who.space else {
                    return login_form(p, req, Some((400, "With the admin key, name the space to act on.")));
                };
                match switchyard::store::tenants::get_space(p.db(), space).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return login_form(p, req, Some((404, &format!("There is no space {space}.")))),
                    Err(_) => {
                        return login_form(p, req, Some((503, "The store is unavailable: try again in a moment.")));
                    }
                }
            }
            let session = Session::new(sub, who.space.clone(), p.now_ms());
            start(p, req, &session, &format!("{BASE}/")).await
        }
        Err(switchyard::usecases::Error::Unavailable { .. }) => {
            login_form(p, req, Some((503, "The store is unavailable: try again in a moment.")))
        }
        Err(_) => {
            // As the API does: a failed login naming a space is in that space's audit log.
            if let Some(space) = &space {
                let request_id = switchyard::domain::ids::ulid_at(p.now_ms()).to_string();
                let entry = switchyard::usecases::audit::Entry {
                    action: "auth.login_failed",
                    resource: "console/login",
                    status: 401,
                    request_id: &request_id,
                };
                switchyard::usecases::audit::note_failed_login(p.db(), space, entry, p.settings.audit_retention_secs)
                    .await;
            }
            login_form(p, req, Some((401, "That key is not valid (or not for that space).")))
        }
    }
}

/// `POST /console/logout`: the session is recorded as ended (a copy of the cookie stops working
/// too) and the cookie is cleared.
pub async fn logout(p: &Platform, req: &Request, session: &Session) -> Response {
    if switchyard::store::sessions::end(p.db(), &session.sid, session.exp).await.is_err() {
        return view::error_page(503, "Signing out failed: the store is unavailable. Try again in a moment.");
    }
    let mut response = view::redirect(&format!("{BASE}/login"));
    if let Ok(v) = http::HeaderValue::from_str(&cookie(p, req, "", 0)) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
    response
}

/// `POST /console/space`: act on another space (the admin key, or a member of several).
pub async fn switch_space(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let text = form.get("space").map(|s| s.trim()).unwrap_or("");
    let space = SpaceId::parse(text).map_err(|e| Failure::Request(400, format!("That space id is not valid: {e}")))?;
    if matches!(c.session.sub, SessionSubject::Key { .. }) {
        return Err(Failure::Request(400, "A key acts on its own space only.".into()));
    }
    auth::resume(c.p.auth(), &c.session.sub, Some(space.clone())).await?;
    if c.who.is_platform_admin() {
        switchyard::store::tenants::require_space(c.p.db(), &space).await?;
    }
    let session = Session { space: Some(space), ..c.session.clone() };
    Ok(start(c.p, &c.req, &session, &format!("{BASE}/")).await)
}

/// The page of a member of several spaces who has not chosen one.
pub fn choose_space(c: &Ctx<'_>) -> Response {
    let body = html! {
        p { "You are a member of several spaces. Choose the one to work in:" }
        ul {
            @for (space, role) in &c.who.spaces {
                li {
                    form.inline method="post" action={(BASE) "/space"} {
                        (view::csrf(c))
                        input type="hidden" name="space" value=(space.as_str());
                        button type="submit" { (space.as_str()) }
                    }
                    " as " (role.to_string())
                }
            }
        }
    };
    view::html(200, view::layout(c, "Choose a space", view::Nav::Overview, body))
}
