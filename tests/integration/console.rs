//! The console over HTTP, as a browser without script sees it: signing in with a key or
//! through the identity provider (PKCE), the session cookie, CSRF, the headers every page
//! carries, permissions (a viewer's forged write), and the pages that act (rerun from the
//! failed step, replaying a dead letter). The same scenarios in a real browser are in
//! `tests/browser/console.py`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::oidc::{MockIssuer, SigningKey, pkce_challenge};
use switchyard_tests::{ADMIN_KEY, Kind, TestApp, platform, platform_with, spawn_app, system_clock, unique};

/// A browser without script: cookies kept by hand, redirects not followed.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// What a page answered.
#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    /// The value of the first form field `name` (the CSRF token).
    fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        Some(self.html[start..].split('"').next()?.to_string())
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, base: app.base.clone(), cookies: Vec::new() }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        self.send_with(method, path, form, &[]).await
    }

    async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut request = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        if let Some(form) = form {
            let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            request = request.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        let response = request.send().await.expect("the console answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let set_cookies: Vec<String> =
            headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
        let html = response.text().await.unwrap_or_default();
        Page { status, location, set_cookies, headers, html }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form)).await
    }

    /// Sign in with a key; returns the session's CSRF token.
    async fn sign_in(&mut self, key: &str) -> String {
        let page = self.post("/console/login", &[("key", key)]).await;
        assert_eq!(page.status, 303, "{page:?}");
        let home = self.get("/console/").await;
        assert_eq!(home.status, 200, "{home:?}");
        home.field("csrf").expect("every signed-in page carries the CSRF token")
    }
}

/// A space with a tenant, and a key of `role` in it.
async fn space_with_key(app: &TestApp, role: &str) -> (String, String, String) {
    let (space, tenant) = (unique("sp"), unique("tn"));
    let admin = app.seed_tenant(&space, &tenant).await;
    let key = match role {
        "admin" => admin,
        _ => {
            let r =
                app.api(&admin, &space, "POST", "/api/v1/api-keys", Some(json!({"name": role, "role": role}))).await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body["key"].as_str().unwrap().to_string()
        }
    };
    (space, tenant, key)
}

#[tokio::test]
async fn signing_in_with_a_key_sets_a_signed_session_that_never_holds_the_key() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (_, _, key) = space_with_key(&app, "admin").await;
    let mut browser = Browser::new(&app);
    // The dev server's front page is the console; without a session, the login page.
    let page = browser.get("/").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/")), "{page:?}");
    let page = browser.get("/console/").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/login")), "{page:?}");
    let page = browser.get("/console/login").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("<label for=\"key\">"), "a labelled key field: {}", page.html);
    // A wrong key: the form again, with the reason, and no cookie.
    let page = browser.post("/console/login", &[("key", "swy_not-a-key")]).await;
    assert_eq!(page.status, 401, "{page:?}");
    assert!(page.html.contains("not valid") && page.set_cookies.is_empty(), "{page:?}");
    // The right one: a session cookie, HttpOnly, SameSite=Lax, for the console only, not Secure
    // on loopback, and not containing the key.
    let page = browser.post("/console/login", &[("key", &key)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/")), "{page:?}");
    let cookie = page.set_cookies.iter().find(|c| c.starts_with("swy_console=")).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/console", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: {cookie}");
    assert!(!cookie.contains(&key) && !cookie.contains(&key[4..20]), "the key is never in the cookie");
    let home = browser.get("/console/").await;
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.html.contains("<h1>Overview</h1>"), "{}", home.html);
    // Every page: a strict policy, no framing, no caching.
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    assert_eq!(home.headers["cache-control"], "no-store");
    assert!(!home.html.contains("<script>") && !home.html.contains(" style="), "no inline script or style");
    // Its assets: hashed names, cached for a year.
    let css = home.html.split("href=\"/console/assets/").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let asset = browser.get(&format!("/console/assets/{css}")).await;
    assert_eq!(asset.status, 200);
    assert_eq!(asset.headers["cache-control"], "public, max-age=31536000, immutable");
    // Signing out clears the cookie and ends the session: a copy of the cookie kept from
    // before does not work either.
    let copy = browser.cookies.clone();
    let csrf = home.field("csrf").unwrap();
    let page = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    assert!(page.set_cookies.iter().any(|c| c.starts_with("swy_console=;") && c.contains("Max-Age=0")), "{page:?}");
    assert_eq!(browser.get("/console/").await.location.as_deref(), Some("/console/login"));
    let mut thief = Browser::new(&app);
    thief.cookies = copy;
    assert_eq!(thief.get("/console/").await.location.as_deref(), Some("/console/login"), "the ended session");
}

#[tokio::test]
async fn a_login_from_another_site_is_refused_and_a_failed_one_is_audited() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, _, key) = space_with_key(&app, "admin").await;
    let mut browser = Browser::new(&app);
    // A cross-site form signing the victim into someone else's space (login CSRF).
    for headers in [[("origin", "https://evil.example")], [("sec-fetch-site", "cross-site")]] {
        let page = browser.send_with("POST", "/console/login", Some(&[("key", &key)]), &headers).await;
        assert_eq!(page.status, 403, "{page:?}");
        assert!(page.set_cookies.is_empty(), "{page:?}");
    }
    let origin = app.base.clone();
    let page = browser.send_with("POST", "/console/login", Some(&[("key", &key)]), &[("origin", &origin)]).await;
    assert_eq!(page.status, 303, "the console's own origin: {page:?}");
    // A wrong key naming a space is in that space's audit log, as from the API.
    let mut guesser = Browser::new(&app);
    let page = guesser.post("/console/login", &[("key", "swy_guess"), ("space", &space)]).await;
    assert_eq!(page.status, 401, "{page:?}");
    let r = app.api(&key, &space, "GET", "/api/v1/audit?action=auth.login_failed", None).await;
    assert_eq!(r.body["items"][0]["resource"], "console/login", "{r:?}");
    // The admin key names the space it acts on, and it must exist.
    let page = guesser.post("/console/login", &[("key", ADMIN_KEY)]).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.html.contains("name the space"), "{}", page.html);
    let page = guesser.post("/console/login", &[("key", ADMIN_KEY), ("space", "no-such-space")]).await;
    assert_eq!(page.status, 404, "{page:?}");
    let page = guesser.post("/console/login", &[("key", ADMIN_KEY), ("space", &space)]).await;
    assert_eq!(page.status, 303, "{page:?}");
    assert!(guesser.get("/console/").await.html.contains("platform admin"));
}

#[tokio::test]
async fn a_forged_expired_or_revoked_session_is_refused() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, _, admin) = space_with_key(&app, "admin").await;
    let r = app
        .api(&admin, &space, "POST", "/api/v1/api-keys", Some(json!({"name": "soon gone", "role": "operator"})))
        .await;
    let (key, key_id) = (r.body["key"].as_str().unwrap().to_string(), r.body["id"].as_str().unwrap().to_string());
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;
    // Claims changed by the holder (the signature no longer matches): signed out.
    let (_, token) = browser.cookies.iter().find(|(n, _)| n == "swy_console").cloned().unwrap();
    let (payload, signature) = token.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["sub"]["kind"], "key", "{claims}");
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let forged = format!("{}.{signature}", b64.encode(serde_json::to_vec(&claims).unwrap()));
    let mut forger = Browser::new(&app);
    forger.cookies.push(("swy_console".into(), forged));
    assert_eq!(forger.get("/console/").await.location.as_deref(), Some("/console/login"));
    // A form posted without a session is a 401, not a redirect that would lose it silently.
    let page = forger.post("/console/tenants", &[("id", "x")]).await;
    assert_eq!(page.status, 401, "{page:?}");
    // The key revoked through the API: the session ends with it.
    assert_eq!(browser.get("/console/").await.status, 200);
    let r = app.api(&admin, &space, "DELETE", &format!("/api/v1/api-keys/{key_id}"), None).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(browser.get("/console/").await.location.as_deref(), Some("/console/login"));
}

#[tokio::test]
async fn a_viewer_sees_no_write_controls_and_its_forged_writes_are_refused() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant, viewer) = space_with_key(&app, "viewer").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&viewer).await;
    let page = browser.get(&format!("/console/tenants/{tenant}")).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.html.contains(&tenant) && !page.html.contains(">Suspend<"), "no write control: {}", page.html);
    let page = browser.get("/console/tenants").await;
    assert!(!page.html.contains("Create a tenant"), "{}", page.html);
    let page = browser.get("/console/settings").await;
    assert!(!page.html.contains("Create a key"), "{}", page.html);
    // The forms a viewer is not shown, posted anyway with a valid token: refused by the
    // operation itself, nothing changed, and the refusal audited.
    let page =
        browser.post(&format!("/console/tenants/{tenant}/status"), &[("csrf", &csrf), ("status", "suspended")]).await;
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.html.contains("does not have the permission tenants.update"), "{}", page.html);
    let page = browser.post("/console/tenants", &[("csrf", &csrf), ("id", "viewer-made")]).await;
    assert_eq!(page.status, 403, "{page:?}");
    let admin = app.seed_tenant(&space, &unique("tn")).await;
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/tenants/{tenant}"), None).await;
    assert_eq!(r.body["status"], "active", "{r:?}");
    let r = app.api(&admin, &space, "GET", "/api/v1/tenants/viewer-made", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = app.api(&admin, &space, "GET", "/api/v1/audit?action=tenant.update", None).await;
    assert_eq!(r.body["items"][0]["outcome"], "denied", "{r:?}");
}

#[tokio::test]
async fn a_form_without_this_sessions_csrf_token_changes_nothing() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant, admin) = space_with_key(&app, "admin").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&admin).await;
    for form in
        [vec![("status", "suspended")], vec![("status", "suspended"), ("csrf", "0123456789abcdef0123456789abcdef")]]
    {
        let page = browser.post(&format!("/console/tenants/{tenant}/status"), &form).await;
        assert_eq!(page.status, 403, "{page:?}");
    }
    // Another session's token does not do either.
    let mut other = Browser::new(&app);
    let other_csrf = other.sign_in(&admin).await;
    assert_ne!(other_csrf, csrf);
    let page = browser
        .post(&format!("/console/tenants/{tenant}/status"), &[("csrf", &other_csrf), ("status", "suspended")])
        .await;
    assert_eq!(page.status, 403, "{page:?}");
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/tenants/{tenant}"), None).await;
    assert_eq!(r.body["status"], "active", "{r:?}");
    // With it, the write happens.
    let page =
        browser.post(&format!("/console/tenants/{tenant}/status"), &[("csrf", &csrf), ("status", "suspended")]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some(format!("/console/tenants/{tenant}").as_str())));
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/tenants/{tenant}"), None).await;
    assert_eq!(r.body["status"], "suspended", "{r:?}");
}

/// A third party that fails its first `failures` calls with a 500, then answers 200.
async fn flaky_service(failures: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < failures {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down")
                } else {
                    (axum::http::StatusCode::OK, "{}")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

#[tokio::test]
async fn the_execution_page_draws_the_failed_step_and_reruns_from_it() {
    execution_page_and_rerun(Kind::Embedded).await;
}

/// The same on the AWS adapters (moto): sessions ended in DynamoDB, runs through SQS.
#[tokio::test]
async fn the_execution_page_draws_the_failed_step_and_reruns_from_it_aws() {
    execution_page_and_rerun(Kind::Aws).await;
}

async fn execution_page_and_rerun(kind: Kind) {
    let app = spawn_app(platform(kind, system_clock()).await).await;
    let (space, tenant, admin) = space_with_key(&app, "admin").await;
    let (url, calls) = flaky_service(1).await;
    let flow = json!({
        "id": "notify", "name": "Notify", "trigger": {"type": "manual"},
        "steps": [
            {"id": "prepare", "kind": "transform", "expr": "{n: 1}"},
            {"id": "call", "kind": "http", "depends_on": ["prepare"], "method": "POST", "url": url, "body": {"n": 1}, "retry": {"max_attempts": 1}},
            {"id": "done", "kind": "transform", "depends_on": ["call"], "expr": "true"}
        ]
    });
    let r = app.api(&admin, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&admin).await;
    // Run it from its page.
    let page = browser
        .post(
            &format!("/console/flows/tenant/{tenant}/notify/run"),
            &[("csrf", &csrf), ("input", "{\"why\": \"test\"}")],
        )
        .await;
    assert_eq!(page.status, 303, "{page:?}");
    let execution_page = page.location.unwrap();
    let id = execution_page.rsplit('/').next().unwrap().to_string();
    let failed = app.wait_execution(&admin, &space, &tenant, &id, Duration::from_secs(20)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let page = browser.get(&execution_page).await;
    assert_eq!(page.status, 200, "{page:?}");
    // The graph: three nodes, coloured by status, linked to each step's details.
    assert!(page.html.contains("data-step=\"prepare\" data-status=\"succeeded\""), "{}", page.html);
    assert!(page.html.contains("data-step=\"call\" data-status=\"failed\""), "{}", page.html);
    assert!(page.html.contains("data-step=\"done\" data-status=\"skipped\""), "{}", page.html);
    assert!(page.html.contains("id=\"step-call\"") && page.html.contains("svg class=\"timeline\""), "{}", page.html);
    assert!(page.html.contains("data-final=\"true\""), "a finished execution stops updating");
    assert!(page.html.contains("500"), "the step's error is shown: {}", page.html);
    // Rerun from the failed step: `prepare` is kept, `call` is called again and succeeds.
    let page = browser.post(&format!("{execution_page}/rerun"), &[("csrf", &csrf), ("from", "failed")]).await;
    assert_eq!(page.status, 303, "{page:?}");
    let rerun_id = page.location.as_deref().unwrap().rsplit('/').next().unwrap().to_string();
    assert_ne!(rerun_id, id);
    let done = app.wait_execution(&admin, &space, &tenant, &rerun_id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the failed call once more, nothing else");
    let page = browser.get(&format!("/console/tenants/{tenant}/executions/{rerun_id}")).await;
    assert!(page.html.contains("data-step=\"call\" data-status=\"succeeded\""), "{}", page.html);
    // The list shows both, newest first.
    let page = browser.get(&format!("/console/executions?tenant={tenant}")).await;
    let (first, second) = (page.html.find(&rerun_id).unwrap(), page.html.find(&id).unwrap());
    assert!(first < second, "newest first");
    // The overview counts them and lists the failure.
    let page = browser.get("/console/").await;
    assert!(page.html.contains(&id), "the latest failure links to its execution: {}", page.html);
    // Signing out ends the session in the store: a copy of the cookie is refused.
    let copy = browser.cookies.clone();
    assert_eq!(browser.post("/console/logout", &[("csrf", &csrf)]).await.status, 303);
    let mut thief = Browser::new(&app);
    thief.cookies = copy;
    assert_eq!(thief.get("/console/").await.location.as_deref(), Some("/console/login"));
}

#[tokio::test]
async fn the_flow_editor_shows_the_apis_error_next_to_the_text_and_keeps_it() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, _, admin) = space_with_key(&app, "admin").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&admin).await;
    let bad = r#"{"id": "broken", "name": "Broken", "trigger": {"type": "manual"}, "steps": [{"id": "a", "kind": "transform", "depends_on": ["ghost"], "expr": "1"}]}"#;
    let page = browser.post("/console/flows", &[("csrf", &csrf), ("owner", ""), ("definition", bad)]).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.html.contains("id=\"definition-error\"") && page.html.contains("ghost"), "{}", page.html);
    assert!(page.html.contains("&quot;broken&quot;") || page.html.contains("\"broken\""), "the text is kept");
    // YAML is accepted too.
    let yaml = "id: good\nname: Good\ntrigger: {type: manual}\nsteps:\n  - {id: a, kind: transform, expr: '1'}\n";
    let page = browser.post("/console/flows", &[("csrf", &csrf), ("owner", ""), ("definition", yaml)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/flows/space/good")), "{page:?}");
    let r = app.api(&admin, &space, "GET", "/api/v1/workflows/good", None).await;
    assert_eq!((r.status, r.body["version"].as_u64()), (200, Some(1)), "{r:?}");
    // Saving from a stale page (another version was saved since) is a conflict, not a silent overwrite.
    let page = browser.get("/console/flows/space/good").await;
    let edit = page.field("version").unwrap();
    assert_eq!(edit, "1");
    let r = app.api(&admin, &space, "PUT", "/api/v1/workflows/good", Some(json!({"name": "Good", "trigger": {"type": "manual"}, "steps": [{"id": "a", "kind": "transform", "expr": "2"}]}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let page =
        browser.post("/console/flows/space/good", &[("csrf", &csrf), ("version", &edit), ("definition", yaml)]).await;
    assert!(page.status == 409 || page.status == 412, "{page:?}");
    // The page keeps the version the text was based on: saving again conflicts again instead of
    // silently overwriting the other change.
    assert_eq!(page.field("version").as_deref(), Some("1"), "{}", page.html);
    let r = app.api(&admin, &space, "GET", "/api/v1/workflows/good", None).await;
    assert_eq!(r.body["version"], 2, "{r:?}");
}

#[tokio::test]
async fn a_dead_letter_is_replayed_from_the_console_one_message_at_a_time() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant, admin) = space_with_key(&app, "admin").await;
    // Two poison messages of this space in the runs DLQ.
    let p = &app.platform;
    for n in 0..2 {
        let body = json!({"type": "start", "space": space, "tenant": tenant, "execution_id": format!("poison-{n}")})
            .to_string();
        p.engine
            .queue
            .send(switchyard::ports::QueueId::RunsDlq, &[switchyard::ports::OutgoingMessage::new(body)])
            .await
            .unwrap();
    }
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&admin).await;
    let page = browser.get("/console/dlq").await;
    assert_eq!(page.status, 200, "{page:?}");
    let ids: Vec<String> =
        page.html.split("data-message=\"").skip(1).filter_map(|r| r.split('"').next()).map(str::to_string).collect();
    assert_eq!(ids.len(), 2, "{}", page.html);
    // Replaying without naming a message or a window is refused: nothing moves by accident.
    let page = browser.post("/console/dlq/replay", &[("csrf", &csrf), ("queue", "runs")]).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert_eq!(p.engine.queue.depth(switchyard::ports::QueueId::RunsDlq).await.unwrap(), 2);
    let page =
        browser.post("/console/dlq/replay", &[("csrf", &csrf), ("queue", "runs"), ("message_id", &ids[0])]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.html.contains("Replayed 1 message(s)"), "{}", page.html);
    assert_eq!(p.engine.queue.depth(switchyard::ports::QueueId::RunsDlq).await.unwrap(), 1);
    let page = browser.get("/console/dlq").await;
    assert!(page.html.contains(&ids[1]) && !page.html.contains(&ids[0]), "{}", page.html);
}

#[tokio::test]
async fn a_member_signs_in_through_the_identity_provider_with_pkce() {
    let issuer = MockIssuer::start().await;
    let key = SigningKey::rsa("rsa-1");
    issuer.publish(&[&key]);
    let url = issuer.url.clone();
    let p = platform_with(Kind::Embedded, system_clock(), 5, move |s| {
        s.oidc.issuers = vec![url.clone()];
        s.oidc.clients = vec!["console".into(), "cli".into()];
        s.console_oidc =
            Some(switchyard::runtime::ConsoleOidc { issuer: url, client_id: "console".into(), client_secret: None });
    })
    .await;
    let app = spawn_app(p).await;
    let space = unique("sp");
    let r = app
        .api(ADMIN_KEY, &space, "POST", "/api/v1/spaces", Some(json!({"id": space, "owner": "alice@example.com"})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut browser = Browser::new(&app);
    assert!(browser.get("/console/login").await.html.contains("/console/login/oidc"), "the login page offers it");
    // To the provider, with a PKCE challenge, a state and a nonce.
    let page = browser.get("/console/login/oidc").await;
    assert_eq!(page.status, 303, "{page:?}");
    let authorize = url::Url::parse(page.location.as_deref().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&format!("{}/protocol/openid-connect/auth", issuer.url)), "{authorize}");
    let q: std::collections::HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "console");
    assert_eq!(q["redirect_uri"], format!("{}/console/login/oidc/callback", app.base));
    // The provider signs alice in and grants a code for that challenge.
    let now = chrono::Utc::now().timestamp();
    let claims = |nonce: &str| {
        json!({"iss": issuer.url, "sub": "alice", "aud": "console", "azp": "console", "iat": now, "exp": now + 300,
        "nonce": nonce, "email": "alice@example.com", "email_verified": true})
    };
    issuer.grant("code-1", &q["code_challenge"], &key.sign(&claims(&q["nonce"])));
    // A callback with another state is refused before any exchange.
    let page = browser.get("/console/login/oidc/callback?code=code-1&state=forged").await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(issuer.token_requests.lock().unwrap().is_empty());
    let page = browser.get(&format!("/console/login/oidc/callback?code=code-1&state={}", q["state"])).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/")), "{page:?}");
    let sent = issuer.token_requests.lock().unwrap()[0].clone();
    assert_eq!(pkce_challenge(&sent["code_verifier"]), q["code_challenge"], "the verifier of the challenge");
    assert_eq!(sent["grant_type"], "authorization_code");
    let home = browser.get("/console/").await;
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.html.contains("alice@example.com") && home.html.contains(&space), "{}", home.html);
    // A token whose nonce is not this attempt's (a replayed one) does not sign anyone in.
    let mut other = Browser::new(&app);
    let page = other.get("/console/login/oidc").await;
    let q2: std::collections::HashMap<String, String> =
        url::Url::parse(page.location.as_deref().unwrap()).unwrap().query_pairs().into_owned().collect();
    issuer.grant("code-2", &q2["code_challenge"], &key.sign(&claims("another-nonce")));
    let page = other.get(&format!("/console/login/oidc/callback?code=code-2&state={}", q2["state"])).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(!other.cookies.iter().any(|(n, _)| n == "swy_console"));
    // Nor does a token the provider issued to another client the API accepts (a CLI's).
    let page = other.get("/console/login/oidc").await;
    let q3: std::collections::HashMap<String, String> =
        url::Url::parse(page.location.as_deref().unwrap()).unwrap().query_pairs().into_owned().collect();
    let mut cli = claims(&q3["nonce"]);
    cli["aud"] = json!("cli");
    cli["azp"] = json!("cli");
    issuer.grant("code-3", &q3["code_challenge"], &key.sign(&cli));
    let page = other.get(&format!("/console/login/oidc/callback?code=code-3&state={}", q3["state"])).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(!other.cookies.iter().any(|(n, _)| n == "swy_console"));
}

#[tokio::test]
async fn settings_and_tenant_pages_change_things_through_the_api() {
    let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
    let (space, tenant, admin) = space_with_key(&app, "admin").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in(&admin).await;
    let ok = |page: &Page| assert_eq!(page.status, 303, "{page:?}");
    // A member invited with a role, the role changed, the member removed.
    ok(&browser
        .post("/console/settings/members", &[("csrf", &csrf), ("member", "bob@example.com"), ("role", "operator")])
        .await);
    let r = app.api(&admin, &space, "GET", "/api/v1/members", None).await;
    let bob =
        r.body["items"].as_array().unwrap().iter().find(|m| m["email"] == "bob@example.com").cloned().expect("invited");
    assert_eq!(bob["role"], "operator");
    let bob_id = bob["id"].as_str().unwrap().to_string();
    assert!(browser.get("/console/settings").await.html.contains(&format!("data-member=\"{bob_id}\"")));
    ok(&browser.post("/console/settings/members", &[("csrf", &csrf), ("member", &bob_id), ("role", "viewer")]).await);
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/members/{bob_id}"), None).await;
    assert_eq!(r.body["role"], "viewer", "{r:?}");
    ok(&browser.post(&format!("/console/settings/members/{bob_id}/remove"), &[("csrf", &csrf)]).await);
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/members/{bob_id}"), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    // An alert rule added and deleted.
    let rule =
        json!({"name": "Failures", "metric": "error_rate", "threshold": 10, "window_hours": 1, "tenant": tenant})
            .to_string();
    ok(&browser.post("/console/settings/alerts", &[("csrf", &csrf), ("id", "failures"), ("json", &rule)]).await);
    assert!(browser.get("/console/settings").await.html.contains("data-alert=\"failures\""));
    ok(&browser.post("/console/settings/alerts/failures/delete", &[("csrf", &csrf)]).await);
    // Ids that are other operations at the same path are refused (`signing-secret` would set the
    // space's alert signing secret).
    for id in ["signing-secret", "events"] {
        let page = browser
            .post("/console/settings/alerts", &[("csrf", &csrf), ("id", id), ("json", r#"{"secret": "x"}"#)])
            .await;
        assert_eq!(page.status, 400, "{page:?}");
    }
    let r = app.api(&admin, &space, "GET", "/api/v1/alerts", None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0, "{r:?}");
    // Bad JSON is a 400 that says so, and changes nothing.
    let page =
        browser.post(&format!("/console/tenants/{tenant}/config"), &[("csrf", &csrf), ("json", "{not json")]).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.html.contains("not valid JSON"), "{}", page.html);
    // The tenant's configuration level and quota overrides; the page names the level of each value.
    ok(&browser
        .post(
            &format!("/console/tenants/{tenant}/config"),
            &[("csrf", &csrf), ("json", r##"{"vars": {"channel": "#ops"}}"##)],
        )
        .await);
    ok(&browser.post("/console/settings/config", &[("csrf", &csrf), ("json", r#"{"step_timeout_ms": 20000}"#)]).await);
    let page = browser.get(&format!("/console/tenants/{tenant}")).await;
    let row = |key: &str| {
        let start =
            page.html.find(&format!("data-config-key=\"{key}\"")).unwrap_or_else(|| panic!("{key}: {}", page.html));
        page.html[start..].split("</tr>").next().unwrap().to_string()
    };
    assert!(row("vars.channel").contains("tenant"), "{}", row("vars.channel"));
    assert!(row("step_timeout_ms").contains("space"), "{}", row("step_timeout_ms"));
    ok(&browser
        .post(
            &format!("/console/tenants/{tenant}/quotas"),
            &[("csrf", &csrf), ("json", r#"{"events_per_day": {"limit": 7}}"#)],
        )
        .await);
    let r = app.api(&admin, &space, "GET", &format!("/api/v1/tenants/{tenant}/quotas"), None).await;
    assert_eq!(r.body["quotas"]["events_per_day"]["limit"], 7, "{r:?}");
    // The space's OAuth app: set, and its secret never shown.
    ok(&browser
        .post(
            "/console/connectors/oauth-app",
            &[("csrf", &csrf), ("connector", "slack"), ("client_id", "cid-1"), ("client_secret", "very-secret-value")],
        )
        .await);
    let r = app.api(&admin, &space, "GET", "/api/v1/connectors/slack/oauth-app", None).await;
    assert_eq!(r.body["client_id"], "cid-1", "{r:?}");
    let page = browser.get("/console/connectors").await;
    assert!(page.html.contains("OAuth app set") && !page.html.contains("very-secret-value"), "{}", page.html);
    // Flow versions: an earlier one is shown, and restoring it saves it as the newest.
    let v1 = json!({"id": "vers", "name": "V", "trigger": {"type": "manual"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]});
    assert_eq!(app.api(&admin, &space, "POST", "/api/v1/workflows", Some(v1)).await.status, 201);
    let v2 =
        json!({"name": "V", "trigger": {"type": "manual"}, "steps": [{"id": "b", "kind": "transform", "expr": "2"}]});
    assert_eq!(app.api(&admin, &space, "PUT", "/api/v1/workflows/vers", Some(v2)).await.status, 200);
    let r = app.api(&admin, &space, "GET", "/api/v1/workflows/vers?version=1", None).await;
    assert_eq!((r.body["version"].as_u64(), r.body["current_version"].as_u64()), (Some(1), Some(2)), "{r:?}");
    assert_eq!(r.body["definition"]["steps"][0]["id"], "a", "{r:?}");
    assert_eq!(app.api(&admin, &space, "GET", "/api/v1/workflows/vers?version=9", None).await.status, 404);
    assert_eq!(app.api(&admin, &space, "GET", "/api/v1/workflows/vers?version=0", None).await.status, 400);
    let page = browser.get("/console/flows/space/vers?version=1").await;
    assert!(page.html.contains("an earlier version") && page.html.contains("data-step=\"a\""), "{}", page.html);
    let version = page.field("version").unwrap();
    assert_eq!(version, "2", "a restore follows the newest version");
    let old = r.body["definition"].to_string();
    ok(&browser
        .post("/console/flows/space/vers", &[("csrf", &csrf), ("version", &version), ("definition", &old)])
        .await);
    let r = app.api(&admin, &space, "GET", "/api/v1/workflows/vers", None).await;
    assert_eq!(
        (r.body["version"].as_u64(), r.body["definition"]["steps"][0]["id"].as_str()),
        (Some(3), Some("a")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_console_page_is_one_api_call_of_its_tenants_minute() {
    let clock = switchyard::ports::ManualClock::at(1_800_000_030_000); // 30 s into a minute
    let app = spawn_app(platform(Kind::Embedded, Arc::new(clock.clone())).await).await;
    let (space, tenant, admin) = space_with_key(&app, "admin").await;
    let r = app
        .api(
            &admin,
            &space,
            "PUT",
            &format!("/api/v1/tenants/{tenant}/quotas"),
            Some(json!({"api_calls_per_minute": {"limit": 4}})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut browser = Browser::new(&app);
    browser.sign_in(&admin).await;
    // The PUT above was the minute's first call; the tenant's page reads eight operations and
    // counts as one, so three views fit and the fourth is refused.
    for _ in 0..3 {
        let page = browser.get(&format!("/console/tenants/{tenant}")).await;
        assert_eq!(page.status, 200, "{page:?}");
    }
    let page = browser.get(&format!("/console/tenants/{tenant}")).await;
    assert_eq!(page.status, 429, "{page:?}");
    assert!(page.headers.contains_key("retry-after"), "{page:?}");
    // The space's pages count on the space, not on the tenant.
    assert_eq!(browser.get("/console/settings").await.status, 200);
    clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(browser.get(&format!("/console/tenants/{tenant}")).await.status, 200, "a new minute");
}
