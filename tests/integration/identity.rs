//! People log in with OIDC bearer tokens of a local mock issuer (keys generated per test):
//! valid and invalid tokens, key rotation and an issuer that is down, memberships, invitations,
//! Keycloak role mappings and custom roles; and the access fixes that came with them (suspended
//! tenants, the tenant header, key expiry and last use, tenant deletion, the credentials group,
//! the audit log).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::ports::{Clock, ManualClock};
use switchyard_tests::oidc::{MockIssuer, SigningKey};
use switchyard_tests::{ADMIN_KEY, Kind, Reply, TestApp, platform_with, spawn_app, unique};

const CLIENT: &str = "switchyard-console";

struct World {
    app: TestApp,
    issuer: MockIssuer,
    clock: ManualClock,
    key: SigningKey,
    space: String,
}

async fn world_with(roles_claims: &[&str]) -> World {
    let issuer = MockIssuer::start().await;
    let key = SigningKey::rsa("rsa-1");
    issuer.publish(&[&key]);
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let (url, claims) = (issuer.url.clone(), roles_claims.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    let p = platform_with(Kind::Embedded, Arc::new(clock.clone()), 5, move |s| {
        s.oidc.issuers = vec![url];
        s.oidc.clients = vec![CLIENT.into()];
        s.oidc.roles_claims = claims;
    })
    .await;
    let app = spawn_app(p).await;
    let space = unique("sp");
    let r = app
        .api(ADMIN_KEY, &space, "POST", "/api/v1/spaces", Some(json!({"id": space, "owner": "alice@example.com"})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["owner"]["role"], "owner", "{r:?}");
    World { app, issuer, clock, key, space }
}

async fn world() -> World {
    world_with(&[]).await
}

impl World {
    fn now(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Keycloak-shaped claims for `sub`, valid now.
    fn claims(&self, sub: &str) -> Value {
        json!({
            "iss": self.issuer.url, "sub": sub, "azp": CLIENT, "aud": "account", "typ": "Bearer",
            "iat": self.now(), "exp": self.now() + 300,
            "email": format!("{sub}@example.com"), "email_verified": true, "preferred_username": sub,
            "realm_access": {"roles": ["offline_access", "default-roles-test"]},
            "resource_access": {"account": {"roles": ["view-profile"]}},
        })
    }

    fn token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub))
    }

    async fn bearer(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {token}");
        let headers =
            [("authorization", auth.as_str()), ("x-fastn-space-id", &self.space), ("content-type", "application/json")];
        self.app.send(method, path, &headers, body.map(|b| serde_json::to_vec(&b).expect("json"))).await
    }
}

fn assert_json_error(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.body["error"]["message"].is_string(), "a JSON error body: {r:?}");
}

#[tokio::test]
async fn an_invited_owner_logs_in_with_a_token_and_sees_their_space_and_permissions() {
    let w = world().await;
    let token = w.token("alice");
    let r = w.bearer(&token, "GET", "/api/v1/me", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["actor"]["kind"], "member");
    assert_eq!(r.body["actor"]["email"], "alice@example.com");
    assert_eq!(r.body["space"], w.space.as_str());
    assert_eq!(r.body["role"], "owner");
    let permissions: Vec<&str> = r.body["permissions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(permissions.contains(&"members.update") && permissions.contains(&"audit.read"), "{r:?}");
    assert!(!permissions.contains(&"spaces.create"), "{r:?}");
    assert_eq!(r.body["spaces"][0]["role"], "owner");
    // The invitation became a membership under the person's id.
    let id = r.body["actor"]["id"].as_str().unwrap().to_string();
    let r = w.bearer(&token, "GET", "/api/v1/members", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{r:?}");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["subject"], "alice");
    // The owner works with the API as with a key: a tenant, then a member.
    let r = w.bearer(&token, "POST", "/api/v1/tenants", Some(json!({"id": unique("tn")}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = w.bearer(&token, "PUT", "/api/v1/members/bob@example.com", Some(json!({"role": "viewer"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let bob = w.token("bob");
    let r = w.bearer(&bob, "GET", "/api/v1/me", None).await;
    assert_eq!(r.body["role"], "viewer", "{r:?}");
    let r = w.bearer(&bob, "POST", "/api/v1/tenants", Some(json!({"id": unique("tn")}))).await;
    assert_json_error(&r, 403);
    // EC and EdDSA keys work as RSA ones do.
    let (ec, ed) = (SigningKey::ec("ec-1"), SigningKey::ed("ed-1"));
    w.issuer.publish(&[&w.key, &ec, &ed]);
    w.clock.advance(Duration::from_secs(61));
    for key in [&ec, &ed] {
        let mut claims = w.claims("alice");
        claims["exp"] = json!(w.now() + 300);
        let r = w.bearer(&key.sign(&claims), "GET", "/api/v1/me", None).await;
        assert_eq!(r.status, 200, "{:?}: {r:?}", key.alg);
    }
}

#[tokio::test]
async fn tokens_that_are_not_valid_are_401_and_say_why() {
    let w = world().await;
    let now = w.now();
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut claims = w.claims("alice");
    claims["exp"] = json!(now - 3600);
    cases.push(("expired", w.key.sign(&claims), "expired"));
    let mut claims = w.claims("alice");
    claims["nbf"] = json!(now + 3600);
    cases.push(("not yet valid", w.key.sign(&claims), "not valid yet"));
    let mut claims = w.claims("alice");
    claims["iss"] = json!("https://evil.example.com/realms/test");
    cases.push(("wrong issuer", w.key.sign(&claims), "trusted issuer"));
    let mut claims = w.claims("alice");
    claims["azp"] = json!("another-client");
    cases.push(("wrong client", w.key.sign(&claims), "another client"));
    // Signed by a key the issuer does not publish, under a kid it does.
    let impostor = SigningKey::rsa("rsa-1");
    cases.push(("bad signature", impostor.sign(&w.claims("alice")), "signature"));
    // `alg: none`, with the issuer's kid.
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rsa-1"})), b64(&w.claims("alice")));
    cases.push(("alg none", none, "accepted algorithm"));
    // HS256 with the issuer's public key as the secret (the classic key-confusion attack).
    let n = w.key.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let hs = jsonwebtoken::encode(&header, &w.claims("alice"), &jsonwebtoken::EncodingKey::from_secret(&n).unwrap())
        .unwrap();
    cases.push(("HS256 with the public key", hs, "not accepted"));
    cases.push(("garbage", "not.a.jwt".into(), "JWT"));
    for (what, token, says) in cases {
        let r = w.bearer(&token, "GET", "/api/v1/me", None).await;
        assert_json_error(&r, 401);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
        assert!(!message.contains(&token), "{what}: the token is not echoed");
    }
    // A valid token still works, and the audience rule holds when one is configured instead.
    assert_eq!(w.bearer(&w.token("alice"), "GET", "/api/v1/me", None).await.status, 200);
}

#[tokio::test]
async fn an_expected_audience_replaces_the_client_check() {
    let issuer = MockIssuer::start().await;
    let key = SigningKey::ec("ec-1");
    issuer.publish(&[&key]);
    let url = issuer.url.clone();
    let p = platform_with(Kind::Embedded, switchyard_tests::system_clock(), 5, move |s| {
        s.oidc.issuers = vec![url];
        s.oidc.audience = Some("https://api.switchyard.example".into());
    })
    .await;
    let app = spawn_app(p).await;
    let space = unique("sp");
    let r = app.api(ADMIN_KEY, &space, "POST", "/api/v1/spaces", Some(json!({"id": space, "owner": "carol"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let now = chrono::Utc::now().timestamp();
    let claims =
        |aud: Value| json!({"iss": issuer.url, "sub": "carol", "aud": aud, "exp": now + 300, "azp": "whatever"});
    for (aud, status) in [
        (json!("https://api.switchyard.example"), 200),
        (json!(["other", "https://api.switchyard.example"]), 200),
        (json!("other"), 401),
        (Value::Null, 401),
    ] {
        let auth = format!("Bearer {}", key.sign(&claims(aud.clone())));
        let r = app.send("GET", "/api/v1/me", &[("authorization", &auth)], None).await;
        assert_eq!(r.status, status, "aud {aud}: {r:?}");
    }
}

#[tokio::test]
async fn a_valid_token_without_a_membership_is_403_not_401() {
    let w = world().await;
    let r = w.bearer(&w.token("mallory"), "GET", "/api/v1/me", None).await;
    assert_json_error(&r, 403);
    let r = w.bearer(&w.token("mallory"), "GET", "/api/v1/tenants", None).await;
    assert_json_error(&r, 403);
    // A member of this space naming another is refused there.
    let auth = format!("Bearer {}", w.token("alice"));
    let r = w
        .app
        .send("GET", "/api/v1/tenants", &[("authorization", &auth), ("x-fastn-space-id", "elsewhere")], None)
        .await;
    assert_json_error(&r, 403);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_unknown_keys_are_not_fetched_per_request() {
    let w = world().await;
    let r = w.bearer(&w.token("alice"), "GET", "/api/v1/me", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(w.issuer.fetches(), 1);
    for _ in 0..5 {
        assert_eq!(w.bearer(&w.token("alice"), "GET", "/api/v1/me", None).await.status, 200);
    }
    assert_eq!(w.issuer.fetches(), 1, "cached keys are used");
    // The issuer rotates to a new key. Within a minute of the last fetch an unknown kid is
    // refused without a fetch; after it, the first token with the new kid fetches once.
    let next = SigningKey::rsa("rsa-2");
    w.issuer.publish(&[&next]);
    let token = next.sign(&w.claims("alice"));
    let r = w.bearer(&token, "GET", "/api/v1/me", None).await;
    assert_json_error(&r, 401);
    assert_eq!(w.issuer.fetches(), 1, "no refetch within a minute");
    w.clock.advance(Duration::from_secs(61));
    let token = next.sign(&w.claims("alice"));
    let concurrent = futures::future::join_all((0..8).map(|_| w.bearer(&token, "GET", "/api/v1/me", None))).await;
    assert!(concurrent.iter().all(|r| r.status == 200), "{concurrent:?}");
    assert_eq!(w.issuer.fetches(), 2, "one shared fetch for the new key");
    for _ in 0..5 {
        assert_eq!(w.bearer(&token, "GET", "/api/v1/me", None).await.status, 200);
    }
    let bogus = SigningKey::rsa("never-published").sign(&w.claims("alice"));
    for _ in 0..5 {
        assert_json_error(&w.bearer(&bogus, "GET", "/api/v1/me", None).await, 401);
    }
    assert_eq!(w.issuer.fetches(), 2, "an unknown kid does not refetch per request");
}

#[tokio::test]
async fn an_identity_provider_that_is_down_is_a_503_and_cached_keys_keep_working() {
    let w = world().await;
    assert_eq!(w.bearer(&w.token("alice"), "GET", "/api/v1/me", None).await.status, 200);
    w.issuer.down.store(true, std::sync::atomic::Ordering::SeqCst);
    // Past the keys' time to live: the refetch fails, the cached key still verifies.
    w.clock.advance(Duration::from_secs(11 * 60));
    let r = w.bearer(&w.token("alice"), "GET", "/api/v1/me", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A key that is not cached cannot be checked: 503 with Retry-After, never 500.
    w.clock.advance(Duration::from_secs(61));
    let r = w.bearer(&SigningKey::ec("new").sign(&w.claims("alice")), "GET", "/api/v1/me", None).await;
    assert_json_error(&r, 503);
    assert!(r.headers.get("retry-after").is_some(), "{r:?}");
    // A platform that never reached the provider answers 503 as well.
    let cold = world().await;
    cold.issuer.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_json_error(&cold.bearer(&cold.token("alice"), "GET", "/api/v1/me", None).await, 503);
    cold.issuer.down.store(false, std::sync::atomic::Ordering::SeqCst);
    cold.clock.advance(Duration::from_secs(6));
    assert_eq!(cold.bearer(&cold.token("alice"), "GET", "/api/v1/me", None).await.status, 200);
}

#[tokio::test]
async fn keycloak_role_claims_map_to_space_roles() {
    let w = world_with(&["realm_access.roles", "resource_access.{azp}.roles"]).await;
    let mut claims = w.claims("dave");
    claims["email_verified"] = json!(false);
    claims["realm_access"]["roles"] = json!(["offline_access", format!("space:{}:viewer", w.space)]);
    let r = w.bearer(&w.key.sign(&claims), "GET", "/api/v1/me", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["role"], "viewer");
    let r = w.bearer(&w.key.sign(&claims), "POST", "/api/v1/tenants", Some(json!({"id": unique("tn")}))).await;
    assert_json_error(&r, 403);
    claims["resource_access"] = json!({CLIENT: {"roles": [format!("space:{}:admin", w.space)]}});
    claims["realm_access"]["roles"] = json!([]);
    let r = w.bearer(&w.key.sign(&claims), "POST", "/api/v1/tenants", Some(json!({"id": unique("tn")}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    // The end-user role cannot be mapped: members act on whole spaces.
    claims["resource_access"] = json!({CLIENT: {"roles": [format!("space:{}:tenant", w.space)]}});
    assert_json_error(&w.bearer(&w.key.sign(&claims), "GET", "/api/v1/me", None).await, 403);
}

#[tokio::test]
async fn roles_are_given_within_ones_own_and_a_space_keeps_an_owner() {
    let w = world().await;
    let alice = w.token("alice");
    let r = w.bearer(&alice, "GET", "/api/v1/me", None).await;
    let alice_id = r.body["actor"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.bearer(&alice, "PUT", "/api/v1/members/erin@example.com", Some(json!({"role": "admin"}))).await.status,
        201
    );
    let erin = w.token("erin");
    assert_eq!(w.bearer(&erin, "GET", "/api/v1/me", None).await.body["role"], "admin");
    // An admin cannot make an owner, nor change or remove one.
    let r = w.bearer(&erin, "PUT", "/api/v1/members/frank@example.com", Some(json!({"role": "owner"}))).await;
    assert_json_error(&r, 403);
    let r = w.bearer(&erin, "PUT", &format!("/api/v1/members/{alice_id}"), Some(json!({"role": "viewer"}))).await;
    assert_json_error(&r, 403);
    assert_json_error(&w.bearer(&erin, "DELETE", &format!("/api/v1/members/{alice_id}"), None).await, 403);
    // The last owner stays.
    assert_json_error(&w.bearer(&alice, "DELETE", &format!("/api/v1/members/{alice_id}"), None).await, 409);
    let r = w.bearer(&alice, "PUT", &format!("/api/v1/members/{alice_id}"), Some(json!({"role": "admin"}))).await;
    assert_json_error(&r, 409);
    // End users get keys, not memberships; unknown custom roles are refused.
    let r = w.bearer(&alice, "PUT", "/api/v1/members/gina@example.com", Some(json!({"role": "tenant"}))).await;
    assert_json_error(&r, 400);
    let r = w.bearer(&alice, "PUT", "/api/v1/members/gina@example.com", Some(json!({"role": "support"}))).await;
    assert_json_error(&r, 400);
    // A custom role: exactly its permissions.
    let r = w
        .bearer(
            &alice,
            "PUT",
            "/api/v1/roles/support",
            Some(json!({"description": "L1", "permissions": ["executions.read", "dlq.read", "dlq.read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["permissions"], json!(["executions.read", "dlq.read"]));
    let r = w.bearer(&alice, "PUT", "/api/v1/roles/support", Some(json!({"permissions": ["spaces.update"]}))).await;
    assert_json_error(&r, 400);
    assert_json_error(&w.bearer(&alice, "PUT", "/api/v1/roles/viewer", Some(json!({"permissions": []}))).await, 400);
    assert_eq!(
        w.bearer(&alice, "PUT", "/api/v1/members/gina@example.com", Some(json!({"role": "support"}))).await.status,
        201
    );
    let gina = w.token("gina");
    let r = w.bearer(&gina, "GET", "/api/v1/me", None).await;
    assert_eq!(r.body["role"], "support", "{r:?}");
    assert_eq!(r.body["permissions"], json!(["executions.read", "dlq.read"]));
    assert_eq!(w.bearer(&gina, "GET", "/api/v1/dlq", None).await.status, 200);
    assert_json_error(&w.bearer(&gina, "GET", "/api/v1/tenants", None).await, 403);
    // A held role is not deleted; the roles list shows built-in and custom ones.
    assert_json_error(&w.bearer(&alice, "DELETE", "/api/v1/roles/support", None).await, 409);
    let r = w.bearer(&alice, "GET", "/api/v1/roles", None).await;
    let names: Vec<&str> = r.body["items"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["owner", "admin", "developer", "operator", "viewer", "tenant", "support"]);
    // A removed member is refused at once in this container.
    let r = w.bearer(&gina, "GET", "/api/v1/me", None).await;
    let gina_id = r.body["actor"]["id"].as_str().unwrap().to_string();
    assert_eq!(w.bearer(&alice, "DELETE", &format!("/api/v1/members/{gina_id}"), None).await.status, 204);
    assert_json_error(&w.bearer(&gina, "GET", "/api/v1/dlq", None).await, 403);
    assert_eq!(w.bearer(&alice, "DELETE", "/api/v1/roles/support", None).await.status, 204);
}

/// Audit records of the space, newest first.
async fn audit(app: &TestApp, space: &str, query: &str) -> Vec<Value> {
    let r = app.api(ADMIN_KEY, space, "GET", &format!("/api/v1/audit?limit=200{query}"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn writes_and_refusals_are_audited_with_their_actor_and_reads_are_not() {
    let w = world().await;
    let alice = w.token("alice");
    let me = w.bearer(&alice, "GET", "/api/v1/me", None).await;
    let alice_id = me.body["actor"]["id"].as_str().unwrap().to_string();
    let before = audit(&w.app, &w.space, "").await.len();
    // The log is ordered by time; records of one millisecond come in no particular order.
    w.clock.advance(Duration::from_millis(5));
    let tenant = unique("tn");
    let r = w.bearer(&alice, "POST", "/api/v1/tenants", Some(json!({"id": tenant}))).await;
    assert_eq!(r.status, 201);
    let request_id = r.headers.get("x-request-id").unwrap().to_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(w.bearer(&alice, "GET", "/api/v1/tenants", None).await.status, 200);
    }
    let records = audit(&w.app, &w.space, "").await;
    assert_eq!(records.len(), before + 1, "one write, three reads: {records:?}");
    let record = &records[0];
    assert_eq!(record["action"], "tenant.create");
    assert_eq!(record["actor"], alice_id.as_str());
    assert_eq!(record["actor_kind"], "member");
    assert_eq!(record["actor_email"], "alice@example.com");
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(record["status"], 201);
    assert_eq!(record["resource"], "tenants");
    assert_eq!(record["request_id"], request_id.as_str());
    // A viewer's write is refused and recorded as denied; a failed login naming the space too.
    let r =
        w.app.api(ADMIN_KEY, &w.space, "POST", "/api/v1/api-keys", Some(json!({"name": "v", "role": "viewer"}))).await;
    let (viewer, viewer_id) = (r.body["key"].as_str().unwrap().to_string(), r.body["id"].as_str().unwrap().to_string());
    let r = w.app.api(&viewer, &w.space, "DELETE", &format!("/api/v1/tenants/{tenant}"), None).await;
    assert_json_error(&r, 403);
    let r =
        w.app.api("swy_not_a_key_of_anyone_at_all_0000000000000000000", &w.space, "GET", "/api/v1/tenants", None).await;
    assert_json_error(&r, 401);
    let denied = audit(&w.app, &w.space, &format!("&actor={viewer_id}")).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["action"], "tenant.delete");
    let failed = audit(&w.app, &w.space, "&action=auth.login_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["actor"], "anonymous");
    // No secret in any record: not the key, not the token.
    let all = serde_json::to_string(&audit(&w.app, &w.space, "").await).unwrap();
    assert!(!all.contains(&viewer) && !all.contains(&alice) && !all.contains("swy_not_a_key"), "{all}");
    // Time filters are key ranges.
    let at = records[0]["at"].as_i64().unwrap();
    assert!(audit(&w.app, &w.space, &format!("&until={}", at - 1)).await.iter().all(|r| r["at"].as_i64() < Some(at)));
    assert!(audit(&w.app, &w.space, &format!("&since={}", at + 60_000)).await.is_empty());
    // Only owners and admins read the log.
    assert_json_error(&w.app.api(&viewer, &w.space, "GET", "/api/v1/audit", None).await, 403);
    // The admin key creates a space without naming one in a header: the new space records it.
    let other = unique("sp");
    let body = serde_json::to_vec(&json!({"id": other})).unwrap();
    let r = w
        .app
        .send(
            "POST",
            "/api/v1/spaces",
            &[("x-fastn-api-key", ADMIN_KEY), ("content-type", "application/json")],
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let created = audit(&w.app, &other, "&action=space.create").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["actor_kind"], "platform_admin");
}

#[tokio::test]
async fn suspended_tenants_run_nothing_over_rest_and_queued_runs_are_cancelled() {
    let app = spawn_app(switchyard_tests::platform(Kind::Embedded, switchyard_tests::system_clock()).await).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let flow = json!({"id": "f", "name": "f", "trigger": {"type": "manual"},
                      "steps": [{"id": "s", "kind": "transform", "expr": "1"}]});
    assert_eq!(
        app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows"), Some(flow)).await.status,
        201
    );
    let r = app.api(&key, &space, "POST", &format!("/api/v1/tenants/{tenant}/workflows/f/run"), Some(json!({}))).await;
    let done = r.body["execution_id"].as_str().unwrap().to_string();
    app.wait_execution(&key, &space, &tenant, &done, Duration::from_secs(30)).await;
    let r = app
        .api(&key, &space, "PATCH", &format!("/api/v1/tenants/{tenant}"), Some(json!({"status": "suspended"})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for (method, path, body) in [
        ("POST", format!("/api/v1/tenants/{tenant}/workflows/f/run"), json!({})),
        ("POST", format!("/api/v1/tenants/{tenant}/executions/{done}/rerun"), json!({"from": "start"})),
        ("POST", format!("/api/v1/tenants/{tenant}/connectors/slack/actions/post_message"), json!({"input": {}})),
    ] {
        let r = app.api(&key, &space, method, &path, Some(body)).await;
        assert_json_error(&r, 400);
        assert_eq!(r.body["error"]["code"], "tenant_suspended", "{path}: {r:?}");
    }
    // A run queued before the suspension is cancelled by the executor, before any step.
    let resolved = switchyard::store::tenants::resolve_tenant(
        app.platform.db(),
        &switchyard::domain::ids::TenantId::parse(&tenant).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let record = switchyard::store::flows::find_flow_for_tenant(
        app.platform.db(),
        &resolved,
        &switchyard::domain::ids::FlowId::parse("f").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let queued = switchyard::engine::runs::start_run(
        &app.platform.engine,
        &resolved,
        &record,
        switchyard::domain::execution::TriggerInfo::manual(),
        json!({"input": {}}),
        None,
    )
    .await
    .unwrap();
    let e = app.wait_execution(&key, &space, &tenant, &queued.to_string(), Duration::from_secs(30)).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    assert_eq!(e["error"]["message"], "the tenant is suspended", "{e}");
    assert!(e["step_details"].as_array().is_none_or(|s| s.is_empty()), "no step ran: {e}");
}

#[tokio::test]
async fn a_path_and_a_tenant_header_naming_different_tenants_are_a_400() {
    let app = spawn_app(switchyard_tests::platform(Kind::Embedded, switchyard_tests::system_clock()).await).await;
    let (space, a, b) = (unique("sp"), unique("tn"), unique("tn"));
    let key = app.seed_tenant(&space, &a).await;
    assert_eq!(app.api(&key, &space, "POST", "/api/v1/tenants", Some(json!({"id": b}))).await.status, 201);
    let headers = [("x-fastn-api-key", key.as_str()), ("x-fastn-space-id", &space), ("x-fastn-space-tenantid", &b)];
    let r = app.send("GET", &format!("/api/v1/tenants/{a}/executions"), &headers, None).await;
    assert_json_error(&r, 400);
    let r = app.send("GET", &format!("/api/v1/tenants/{b}/executions"), &headers, None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn keys_expire_record_their_last_use_and_deleted_tenants_are_gone_for_good() {
    let clock = ManualClock::at(chrono::Utc::now().timestamp_millis());
    let app = spawn_app(platform_with(Kind::Embedded, Arc::new(clock.clone()), 5, |_| {}).await).await;
    let (space, tenant) = (unique("sp"), unique("tn"));
    let key = app.seed_tenant(&space, &tenant).await;
    let expires_at = clock.now_ms() + 60_000;
    let r = app
        .api(
            &key,
            &space,
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "short", "role": "viewer", "expires_at": expires_at})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let (short, id) = (r.body["key"].as_str().unwrap().to_string(), r.body["id"].as_str().unwrap().to_string());
    assert_eq!(app.api(&short, &space, "GET", "/api/v1/tenants", None).await.status, 200);
    let r = app.api(&key, &space, "GET", "/api/v1/api-keys", None).await;
    let listed = r.body["items"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!(listed["expires_at"], expires_at);
    assert!(listed["last_used_at"].as_i64().is_some(), "{listed}");
    assert!(listed.get("key_hash").is_none());
    clock.advance(Duration::from_secs(61));
    let r = app.api(&short, &space, "GET", "/api/v1/tenants", None).await;
    assert_json_error(&r, 401);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("expired"));
    let r = app
        .api(&key, &space, "POST", "/api/v1/api-keys", Some(json!({"name": "past", "role": "viewer", "expires_at": 1})))
        .await;
    assert_json_error(&r, 400);

    // The credentials group: presence, kind, health, never values; and deleting one.
    let r = app.api(&key, &space, "PUT", &format!("/api/v1/tenants/{tenant}/connectors/stripe"), Some(json!({}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .api(
            &key,
            &space,
            "PUT",
            &format!("/api/v1/tenants/{tenant}/connectors/stripe/credentials"),
            Some(json!({"kind": "bearer", "token": "sk_test_do_not_show"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}/credentials"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["items"][0]["connector"], "stripe");
    assert_eq!(r.body["items"][0]["connected"], true);
    assert_eq!(r.body["items"][0]["kind"], "bearer");
    assert_eq!(r.body["items"][0]["health"], "ok");
    assert!(!r.body.to_string().contains("sk_test_do_not_show"));
    let r = app.api(&key, &space, "DELETE", &format!("/api/v1/tenants/{tenant}/credentials/stripe"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}/credentials"), None).await;
    assert_eq!(r.body["items"][0]["health"], "not_connected", "{r:?}");

    // Deleting the tenant: gone from the API and the webhook receiver, its id never reused.
    assert_eq!(app.api(&key, &space, "DELETE", &format!("/api/v1/tenants/{tenant}"), None).await.status, 204);
    assert_json_error(&app.api(&key, &space, "GET", &format!("/api/v1/tenants/{tenant}"), None).await, 404);
    let r = app
        .send(
            "POST",
            &format!("/webhooks/{tenant}/stripe"),
            &[("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = app.api(&key, &space, "POST", "/api/v1/tenants", Some(json!({"id": tenant}))).await;
    assert_json_error(&r, 409);
    let owner = switchyard::store::connections::owner(
        &switchyard::domain::ids::SpaceId::parse(&space).unwrap(),
        &switchyard::domain::ids::TenantId::parse(&tenant).unwrap(),
    );
    assert!(app.platform.db().secrets.get(&owner).await.unwrap().is_none(), "the tenant's secrets are deleted");
}
