//! Every signature scheme end to end through the dev server, as each provider sends it: the
//! catalog's connector, the tenant's secret, the event type and delivery id where the provider
//! puts them, one run per matching flow, duplicates answered 200, tampering 401 — plus Slack's
//! endpoint check and the body-hash delivery id of providers that send none.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use switchyard::domain::webhook::signature::sign;
use switchyard_tests::{Kind, Reply, TestApp, platform, spawn_app, system_clock, unique};

struct Ctx {
    app: TestApp,
    key: String,
    space: String,
    tenant: String,
}

impl Ctx {
    /// The dev server on the embedded backend, with a new space, tenant and admin key.
    async fn start() -> Ctx {
        let app = spawn_app(platform(Kind::Embedded, system_clock()).await).await;
        let (space, tenant) = (unique("sp"), unique("tn"));
        let key = app.seed_tenant(&space, &tenant).await;
        Ctx { app, key, space, tenant }
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.app.api(&self.key, &self.space, method, path, Some(body)).await;
        assert!(r.status < 300, "{method} {path}: {r:?}");
        r.body
    }

    /// Enable `connector` with `extra` settings, store its webhook secret, and add a flow run
    /// on `event_type` that returns the event's type and delivery id.
    async fn wire(&self, connector: &str, extra: Value, secret: &str, event_type: &str) {
        let t = &self.tenant;
        let mut body = json!({"enabled": true});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.api("PUT", &format!("/api/v1/tenants/{t}/connectors/{connector}"), body).await;
        self.api(
            "PUT",
            &format!("/api/v1/tenants/{t}/connectors/{connector}/webhook-secret"),
            json!({"secret": secret}),
        )
        .await;
        let flow = json!({
            "id": format!("on-{}", connector.replace('_', "-")), "name": connector,
            "trigger": {"type": "webhook", "connector": connector, "events": [event_type]},
            "steps": [{"id": "seen", "kind": "transform", "expr": "{type: .trigger.event_type, id: .trigger.id}"}]
        });
        self.api("POST", &format!("/api/v1/tenants/{t}/workflows"), flow).await;
    }

    async fn deliver(&self, connector: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if !headers.iter().any(|(k, _)| k == "content-type") {
            all.push(("content-type", "application/json"));
        }
        self.app.send("POST", &format!("/webhooks/{}/{connector}", self.tenant), &all, Some(body.to_vec())).await
    }
}

fn h(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// One provider's delivery: how to sign it, and what the receiver must make of it.
struct Case {
    connector: &'static str,
    extra: Value,
    secret: String,
    event_type: &'static str,
    body: Vec<u8>,
    sign: Box<dyn Fn(&str, &[u8], i64) -> Vec<(String, String)>>,
    /// The delivery id the receiver must find (None: the body's SHA-256).
    delivery_id: Option<&'static str>,
    /// The status of an accepted delivery.
    accepted: u16,
}

fn cases(base: &str, tenant: &str) -> Vec<Case> {
    let standard_secret =
        format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>()));
    let hubspot_url = format!("https://{}/webhooks/{tenant}/hubspot", base.trim_start_matches("http://"));
    vec![
        Case {
            connector: "stripe",
            extra: json!({}),
            secret: "whsec_stripe_endpoint_secret".into(),
            event_type: "invoice.paid",
            body: serde_json::to_vec(&json!({"id": "evt_1Q", "object": "event", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}})).unwrap(),
            sign: Box::new(|secret, body, now| h(&[("stripe-signature", sign::stripe(secret, now, body))])),
            delivery_id: Some("evt_1Q"),
            accepted: 202,
        },
        Case {
            connector: "shopify",
            extra: json!({"settings": {"shop": "acme-store"}}),
            secret: "shopify-app-client-secret".into(),
            event_type: "orders/create",
            body: serde_json::to_vec(&json!({"id": 820982911946154508u64, "total_price": "59.00"})).unwrap(),
            sign: Box::new(|secret, body, now| {
                let at = chrono::DateTime::from_timestamp(now, 0).unwrap().to_rfc3339();
                h(&[
                    ("x-shopify-hmac-sha256", sign::shopify(secret, body)),
                    ("x-shopify-topic", "orders/create".into()),
                    ("x-shopify-event-id", "98880550-7158-44d4-b7cd-2c97c8a091b5".into()),
                    ("x-shopify-webhook-id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into()),
                    ("x-shopify-triggered-at", at),
                    ("x-shopify-shop-domain", "acme-store.myshopify.com".into()),
                ])
            }),
            accepted: 202,
            delivery_id: Some("98880550-7158-44d4-b7cd-2c97c8a091b5"),
        },
        Case {
            connector: "slack",
            extra: json!({}),
            secret: "8f742231b10e8888abcd99yyyzzz85a5".into(),
            event_type: "app_mention",
            body: serde_json::to_vec(&json!({"type": "event_callback", "event_id": "Ev08MFMKH6", "event": {"type": "app_mention", "text": "hi"}})).unwrap(),
            sign: Box::new(|secret, body, now| {
                h(&[("x-slack-request-timestamp", now.to_string()), ("x-slack-signature", sign::slack(secret, now, body))])
            }),
            accepted: 202,
            delivery_id: Some("Ev08MFMKH6"),
        },
        Case {
            connector: "standard_webhooks",
            extra: json!({}),
            secret: standard_secret,
            event_type: "user.created",
            body: serde_json::to_vec(&json!({"type": "user.created", "timestamp": "2026-11-30T10:00:00Z", "data": {"id": "u_1"}})).unwrap(),
            sign: Box::new(|secret, body, now| {
                h(&[
                    ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".into()),
                    ("webhook-timestamp", now.to_string()),
                    // Several signatures (a rotation on the sender's side): one valid is enough.
                    ("webhook-signature", format!("v1,bm90LXRoaXMtb25l {}", sign::standard(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body))),
                ])
            }),
            accepted: 202,
            delivery_id: Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
        },
        Case {
            connector: "standard_webhooks",
            extra: json!({}),
            secret: String::new(), // set to the previous case's secret
            event_type: "user.created",
            body: serde_json::to_vec(&json!({"type": "user.created", "data": {"id": "u_2"}})).unwrap(),
            sign: Box::new(|secret, body, now| {
                h(&[
                    ("svix-id", "msg_svix_alias_1".into()),
                    ("svix-timestamp", now.to_string()),
                    ("svix-signature", sign::standard(secret, "msg_svix_alias_1", now, body)),
                ])
            }),
            accepted: 202,
            delivery_id: Some("msg_svix_alias_1"),
        },
        Case {
            connector: "custom_webhooks",
            extra: json!({"hmac": {"header": "X-Acme-Signature", "encoding": "base64", "prefix": "sha256=",
                                   "timestamp_header": "X-Acme-Timestamp", "template": "{timestamp}.{body}"}}),
            secret: "acme-signing-secret".into(),
            event_type: "widget.shipped",
            // No id in the body: the delivery id is the body's hash.
            body: serde_json::to_vec(&json!({"event": "widget.shipped", "widget": 42})).unwrap(),
            sign: Box::new(|secret, body, now| {
                let mut content = format!("{now}.").into_bytes();
                content.extend_from_slice(body);
                h(&[("x-acme-timestamp", now.to_string()), ("x-acme-signature", format!("sha256={}", sign::hmac_base64(secret, &content)))])
            }),
            accepted: 202,
            delivery_id: None,
        },
        Case {
            connector: "hubspot",
            extra: json!({}),
            secret: "hubspot-app-client-secret".into(),
            event_type: "contact.creation",
            body: serde_json::to_vec(&json!([{"eventId": 100, "subscriptionType": "contact.creation", "objectId": 123}])).unwrap(),
            sign: Box::new(move |secret, body, now| {
                let ms = (now * 1000).to_string();
                let mut content = format!("POST{hubspot_url}").into_bytes();
                content.extend_from_slice(body);
                content.extend_from_slice(ms.as_bytes());
                h(&[("x-hubspot-request-timestamp", ms), ("x-hubspot-signature-v3", sign::hmac_base64(secret, &content))])
            }),
            accepted: 202,
            delivery_id: Some("100"),
        },
        Case {
            connector: "xero",
            extra: json!({"settings": {"tenant_id": "70784a63-d24b-46a9-a4db-0e70a274b056"}}),
            secret: "xero-webhook-key".into(),
            event_type: "INVOICE.UPDATE",
            body: serde_json::to_vec(&json!({"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/ad7f1f0e",
                "resourceId": "ad7f1f0e", "eventDateUtc": "2026-11-30T10:00:00.000", "eventType": "UPDATE",
                "eventCategory": "INVOICE", "tenantId": "70784a63-d24b-46a9-a4db-0e70a274b056", "tenantType": "ORGANISATION"}],
                "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "S0m3r4Nd0mt3xt"})).unwrap(),
            sign: Box::new(|secret, body, _| h(&[("x-xero-signature", sign::hmac_base64(secret, body))])),
            delivery_id: Some("ad7f1f0e@2026-11-30T10:00:00.000"),
            // Xero's "intent to receive" check accepts only 200.
            accepted: 200,
        },
    ]
}

#[tokio::test]
async fn every_scheme_is_verified_routed_and_deduplicated_end_to_end() {
    let ctx = Ctx::start().await;
    let mut cases = cases(&ctx.app.base, &ctx.tenant);
    // The Svix-header case is the same connector and endpoint secret as the one before it.
    cases[4].secret = cases[3].secret.clone();
    let mut wired = std::collections::HashSet::new();
    for case in &cases {
        if wired.insert(case.connector) {
            ctx.wire(case.connector, case.extra.clone(), &case.secret, case.event_type).await;
        }
    }

    for case in &cases {
        let what = format!("{} ({})", case.connector, case.delivery_id.unwrap_or("body hash"));
        let now = chrono::Utc::now().timestamp();
        let headers = (case.sign)(&case.secret, &case.body, now);
        let r = ctx.deliver(case.connector, &headers, &case.body).await;
        assert_eq!((r.status, r.body["status"].as_str()), (case.accepted, Some("accepted")), "{what}: {r:?}");
        assert_eq!(r.body["event_type"], case.event_type, "{what}");
        let delivery = r.body["delivery_id"].as_str().unwrap().to_string();
        match case.delivery_id {
            Some(id) => assert_eq!(delivery, id, "{what}"),
            None => assert!(delivery.starts_with("sha256:") && delivery.len() == 71, "{what}: {delivery}"),
        }
        let runs = r.body["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{what}: {r:?}");
        let execution = runs[0]["execution_id"].as_str().unwrap();
        let done = ctx.app.wait_execution(&ctx.key, &ctx.space, &ctx.tenant, execution, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "succeeded", "{what}: {done}");
        assert_eq!(done["step_details"][0]["output"], json!({"type": case.event_type, "id": delivery}), "{what}");

        // The provider retries the same delivery: nothing more runs.
        let again = (case.sign)(&case.secret, &case.body, now + 1);
        let r = ctx.deliver(case.connector, &again, &case.body).await;
        assert_eq!((r.status, r.body["status"].as_str()), (200, Some("duplicate")), "{what}: {r:?}");

        // Tampered body, wrong secret, no signature: 401 with a JSON error, nothing queued.
        let mut tampered = case.body.clone();
        tampered.insert(1, b' ');
        tampered.insert(1, b'\n');
        let r = ctx.deliver(case.connector, &headers, &tampered).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (401, Some("unauthorized")), "{what} tampered: {r:?}");
        let wrong = (case.sign)(&format!("{}x", case.secret), &case.body, now);
        let r = ctx.deliver(case.connector, &wrong, &case.body).await;
        assert_eq!(r.status, 401, "{what} wrong secret: {r:?}");
        assert!(!r.body.to_string().contains(&case.secret), "no secret in errors");
        let r = ctx.deliver(case.connector, &[], &case.body).await;
        assert_eq!(r.status, 401, "{what} unsigned: {r:?}");
        // Outside the tolerance window (HubSpot's and Slack's limits are the platform's 300 s);
        // Shopify has a 48-hour age limit, Xero signs no timestamp.
        if !matches!(case.connector, "shopify" | "xero") {
            let stale = (case.sign)(&case.secret, &case.body, now - 600);
            let r = ctx.deliver(case.connector, &stale, &case.body).await;
            assert_eq!(r.status, 401, "{what} stale: {r:?}");
        }
    }

    // Slack's endpoint check is answered with its challenge and runs nothing.
    let body = serde_json::to_vec(&json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"})).unwrap();
    let now = chrono::Utc::now().timestamp();
    let headers = h(&[
        ("x-slack-request-timestamp", now.to_string()),
        ("x-slack-signature", sign::slack(&cases[2].secret, now, &body)),
    ]);
    let r = ctx.deliver("slack", &headers, &body).await;
    assert_eq!(
        (r.status, r.body["challenge"].as_str()),
        (200, Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")),
        "{r:?}"
    );
    // An unsigned challenge is refused like any other request.
    let r = ctx.deliver("slack", &[], &body).await;
    assert_eq!(r.status, 401, "{r:?}");

    // A custom HMAC configuration that would leave the body or its timestamp unsigned is
    // refused when it is set, with the reason.
    for (hmac, why) in [
        (json!({"header": "X-Sig", "template": "{timestamp}", "timestamp_header": "X-Time"}), "{body}"),
        (json!({"header": "X-Sig", "template": "{body}", "timestamp_header": "X-Time"}), "{timestamp}"),
        (json!({"header": "X Sig"}), "header name"),
    ] {
        let path = format!("/api/v1/tenants/{}/connectors/custom_webhooks", ctx.tenant);
        let r = ctx.app.api(&ctx.key, &ctx.space, "PUT", &path, Some(json!({"enabled": true, "hmac": hmac}))).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_hmac")), "{r:?}");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(why), "{r:?}");
    }

    // Every accepted delivery is in the tenant's event log, without its payload.
    let r = ctx
        .app
        .api(&ctx.key, &ctx.space, "GET", &format!("/api/v1/tenants/{}/events?limit=50", ctx.tenant), None)
        .await;
    let logged = r.body["items"].as_array().unwrap();
    assert_eq!(logged.len(), cases.len(), "{r:?}");
    assert!(
        logged
            .iter()
            .all(|e| e.get("payload").is_none() && e["payload_sha256"].as_str().is_some_and(|h| h.len() == 64))
    );
}

#[tokio::test]
async fn a_notion_setup_token_waits_for_an_admin_and_never_becomes_the_secret_by_itself() {
    let ctx = Ctx::start().await;
    let t = ctx.tenant.clone();
    ctx.api("PUT", &format!("/api/v1/tenants/{t}/connectors/notion"), json!({"enabled": true})).await;
    let flow = json!({"id": "on-notion", "name": "notion", "trigger": {"type": "webhook", "connector": "notion", "events": ["page.created"]},
                      "steps": [{"id": "seen", "kind": "transform", "expr": ".trigger.event_type"}]});
    ctx.api("POST", &format!("/api/v1/tenants/{t}/workflows"), flow).await;
    let queued = || async { ctx.app.platform.engine.queue.depth(switchyard::ports::QueueId::Runs).await.unwrap() };

    // Notion's unsigned setup request: kept, answered 200, nothing runs.
    let token = "secret_Zx9NotionVerification0123";
    let setup = serde_json::to_vec(&json!({"verification_token": token})).unwrap();
    let r = ctx.deliver("notion", &[], &setup).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("setup_token_received")), "{r:?}");
    assert!(!r.body.to_string().contains(token), "the token is not echoed");
    // Anything else unsigned is still refused, and an event signed with the pending token is
    // not accepted: it is not the secret until an admin sets it.
    let other = serde_json::to_vec(&json!({"verification_token": token, "type": "page.created"})).unwrap();
    assert_eq!(ctx.deliver("notion", &[], &other).await.status, 401);
    let event = serde_json::to_vec(&json!({"id": "evt-1", "type": "page.created", "entity": {"id": "p1"}})).unwrap();
    let signed = h(&[("x-notion-signature", sign::github(token, &event))]);
    assert_eq!(ctx.deliver("notion", &signed, &event).await.status, 401);
    assert_eq!(queued().await, 0);

    // The admin reads it, pastes it into Notion, and sets it as the secret.
    let path = format!("/api/v1/tenants/{t}/connectors/notion/webhook-setup-tokens");
    let r = ctx.app.api(&ctx.key, &ctx.space, "GET", &path, None).await;
    assert_eq!((r.status, r.body["items"][0]["token"].as_str()), (200, Some(token)), "{r:?}");
    ctx.api("PUT", &format!("/api/v1/tenants/{t}/connectors/notion/webhook-secret"), json!({"secret": token})).await;
    let r = ctx.app.api(&ctx.key, &ctx.space, "GET", &path, None).await;
    assert_eq!(r.body["items"], json!([]), "setting the secret clears the list: {r:?}");
    let r = ctx.deliver("notion", &signed, &event).await;
    assert_eq!((r.status, r.body["runs"].as_array().map(Vec::len)), (202, Some(1)), "{r:?}");

    // Connectors without a setup token have no such list.
    let r = ctx
        .app
        .api(&ctx.key, &ctx.space, "GET", &format!("/api/v1/tenants/{t}/connectors/github/webhook-setup-tokens"), None)
        .await;
    assert_eq!(r.status, 400, "{r:?}");
}
