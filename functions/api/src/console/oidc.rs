//! Signing in to the console through the OpenID Connect provider: the authorization-code flow
//! with PKCE (RFC 7636, `S256`).
//!
//! 1. `GET /console/login/oidc`: discovery gives the authorization and token endpoints; a
//!    random `state`, `nonce` and PKCE verifier go into a signed cookie `swy_oidc` (10 minutes,
//!    `Path=/console/login/oidc`); the browser is sent to the provider with the challenge.
//! 2. `GET /console/login/oidc/callback?code&state`: the state must be the cookie's; the code is
//!    exchanged (with the verifier, and the client secret for a confidential client) for an ID
//!    token, which is verified as any bearer token is (`ports::TokenVerifier`: issuer, keys,
//!    expiry, audience) and must carry the cookie's nonce. The member then gets a session
//!    (`auth::sign_in_with_token`); no token is kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard::ports::OutboundRequest;
use switchyard::runtime::http::{Request, Response, query};
use switchyard::runtime::{ConsoleOidc, Platform};
use switchyard::usecases::auth::{self, SessionSubject};
use switchyard::usecases::signed::{self, SigningKey};

use super::session::{self, Session};
use super::{BASE, view};

const COOKIE: &str = "swy_oidc";
const PURPOSE: &str = "console oidc";
const PENDING_SECS: i64 = 600;
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// What the browser carries between the two steps, signed.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    exp: i64,
}

pub fn configured(p: &Platform) -> bool {
    p.settings.console_oidc.is_some() && p.tokens.is_some()
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The callback URL, on the console's own origin (`session::origin`). The provider accepts only
/// registered ones, so a forged Host header gets nowhere.
fn redirect_uri(p: &Platform, req: &Request) -> String {
    format!("{}{BASE}/login/oidc/callback", session::origin(p, req))
}

async fn get_json(p: &Platform, url: &str) -> Result<Value, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let request = OutboundRequest::new(http::Method::GET, parsed).header("accept", "application/json");
    let response = p.engine.http.send(request).await.map_err(|e| format!("{url}: {e}"))?;
    if response.status != 200 || response.body.len() > MAX_DOCUMENT_BYTES {
        return Err(format!("{url} answered {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("{url}: not JSON: {e}"))
}

async fn discovery(p: &Platform, client: &ConsoleOidc) -> Result<Value, String> {
    let doc = get_json(p, &format!("{}/.well-known/openid-configuration", client.issuer.trim_end_matches('/'))).await?;
    if doc["issuer"].as_str() != Some(client.issuer.as_str()) {
        return Err("the discovery document names another issuer".into());
    }
    Ok(doc)
}

fn unavailable(detail: &str) -> Response {
    tracing::warn!(%detail, "console sign-in through the identity provider failed");
    view::error_page(
        502,
        "The identity provider could not be reached or answered something unexpected. Try again, or sign in with a key.",
    )
}

/// Step 1.
pub async fn start(p: &Platform, req: &Request) -> Response {
    let (Some(client), Some(_)) = (&p.settings.console_oidc, &p.tokens) else {
        return view::error_page(404, "Signing in through an identity provider is not configured here.");
    };
    let doc = match discovery(p, client).await {
        Ok(doc) => doc,
        Err(e) => return unavailable(&e),
    };
    let Some(endpoint) = doc["authorization_endpoint"].as_str().and_then(|u| url::Url::parse(u).ok()) else {
        return unavailable("discovery without authorization_endpoint");
    };
    let Ok(key) = SigningKey::of(p.admin_key.as_ref(), PURPOSE).await else {
        return view::error_page(503, "No admin key is configured, so no sign-in can be signed.");
    };
    let pending = Pending {
        state: random(),
        nonce: random(),
        verifier: random(),
        redirect_uri: redirect_uri(p, req),
        exp: p.now_ms() / 1000 + PENDING_SECS,
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
    let mut url = endpoint;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &pending.redirect_uri)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut response = view::redirect(url.as_str());
    let secure = session::secure_attribute(p, req);
    let cookie = format!(
        "{COOKIE}={}; Path={BASE}/login/oidc; HttpOnly; SameSite=Lax; Max-Age={PENDING_SECS}{secure}",
        signed::sign(key.as_bytes(), &pending)
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
    response
}

/// The claims of a JWT whose signature was verified already (for its `nonce`).
fn claims_of(jwt: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?).ok()
}

/// Step 2.
pub async fn callback(p: &Platform, req: &Request) -> Response {
    let (Some(client), Some(tokens)) = (&p.settings.console_oidc, &p.tokens) else {
        return view::error_page(404, "Signing in through an identity provider is not configured here.");
    };
    let q = query(req);
    if let Some(error) = q.get("error") {
        let message =
            format!("The identity provider refused the sign-in ({}).", error.chars().take(100).collect::<String>());
        return session::login_form(p, req, Some((401, &message)));
    }
    let expired =
        || session::login_form(p, req, Some((400, "That sign-in attempt expired or was not started here: try again.")));
    let Ok(key) = SigningKey::of(p.admin_key.as_ref(), PURPOSE).await else { return expired() };
    let Some(pending) = session::cookie_value(req, COOKIE).and_then(|c| signed::open::<Pending>(key.as_bytes(), c))
    else {
        return expired();
    };
    let state_ok = q.get("state").is_some_and(|s| signed::same(s, &pending.state));
    if !state_ok || pending.exp <= p.now_ms() / 1000 {
        return expired();
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty() && c.len() <= 4096) else { return expired() };
    let doc = match discovery(p, client).await {
        Ok(doc) => doc,
        Err(e) => return unavailable(&e),
    };
    let Some(token_url) = doc["token_endpoint"].as_str().and_then(|u| url::Url::parse(u).ok()) else {
        return unavailable("discovery without token_endpoint");
    };
    // Built before any await: the serializer is not `Send`.
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &pending.redirect_uri)
            .append_pair("client_id", &client.client_id)
            .append_pair("code_verifier", &pending.verifier);
        if let Some(secret) = &client.client_secret {
            form.append_pair("client_secret", secret);
        }
        form.finish()
    };
    let request = OutboundRequest::new(http::Method::POST, token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form);
    let answer = match p.engine.http.send(request).await {
        Ok(answer) if answer.body.len() <= MAX_DOCUMENT_BYTES => answer,
        Ok(answer) => return unavailable(&format!("token endpoint: {} bytes", answer.body.len())),
        Err(e) => return unavailable(&format!("token endpoint: {e}")),
    };
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let Some(id_token) = body["id_token"].as_str().filter(|_| answer.status == 200) else {
        // The provider's error code only: its description may echo what was sent.
        let code = body["error"].as_str().unwrap_or("no id_token");
        return session::login_form(
            p,
            req,
            Some((401, &format!("The identity provider did not sign you in ({code})."))),
        );
    };
    let verified = match tokens.verify(id_token).await {
        Ok(verified) => verified,
        Err(e) => {
            tracing::info!(error = ?e, "console sign-in: the ID token was refused");
            return session::login_form(p, req, Some((401, "The identity provider's token was not accepted.")));
        }
    };
    // Verified as any bearer token is; then it must be this client's, from this issuer, for
    // this attempt.
    let claims = claims_of(id_token).unwrap_or(Value::Null);
    let nonce_ok = claims["nonce"].as_str().is_some_and(|n| signed::same(n, &pending.nonce));
    let client_id = Some(client.client_id.as_str());
    // OIDC Core 3.1.3.7: `aud` contains the client; with several audiences, `azp` is the client.
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let ours = claims["iss"].as_str() == Some(client.issuer.as_str())
        && audiences.iter().any(|a| Some(*a) == client_id)
        && (audiences.len() == 1 || claims["azp"].as_str() == client_id);
    if !nonce_ok || !ours {
        return expired();
    }
    let token_expires_at = claims["exp"].as_i64().unwrap_or(0);
    match auth::sign_in_with_token(p.auth(), verified, None, token_expires_at).await {
        Ok((who, sub)) => {
            let mut session = Session::new(sub.clone(), who.space.clone(), p.now_ms());
            // Someone whose access comes only from the token's role claims keeps it only as long
            // as the token: after that the session could not show them anything.
            if let SessionSubject::Member { roles, .. } = &sub {
                let without_claims = match sub.clone() {
                    SessionSubject::Member { issuer, subject, email, username, .. } => {
                        SessionSubject::Member { issuer, subject, email, username, roles: Vec::new(), roles_until: 0 }
                    }
                    other => other,
                };
                if !roles.is_empty() && auth::resume(p.auth(), &without_claims, who.space.clone()).await.is_err() {
                    session.exp = session.exp.min(token_expires_at);
                }
            }
            let mut response = session::start(p, req, &session, &format!("{BASE}/")).await;
            let clear = format!("{COOKIE}=; Path={BASE}/login/oidc; HttpOnly; SameSite=Lax; Max-Age=0");
            if let Ok(v) = http::HeaderValue::from_str(&clear) {
                response.headers_mut().append(http::header::SET_COOKIE, v);
            }
            response
        }
        Err(switchyard::usecases::Error::Forbidden(message)) => session::login_form(p, req, Some((403, &message))),
        Err(_) => session::login_form(p, req, Some((503, "Signing in failed on our side: try again."))),
    }
}
