//! Fuzz targets: every parser a stranger (or a flow author) can reach, each as a function of
//! arbitrary bytes that must return without panicking, aborting, overflowing its stack or
//! hanging. `fuzz_targets/*.rs` hand them to libFuzzer (`cargo fuzz run <target> --features
//! fuzzing`); the tests below replay every committed input (`corpus/<target>/`, and the inputs
//! that once broke something, `regressions/<target>/`) on each run of the test suite.
//!
//! Besides "does not crash", targets check properties where one is cheap: a verified webhook's
//! delivery id is never empty, a parsed flow reads back equal from its stored form, JSON that
//! passes `check_text` parses, an answer of the MCP endpoint is never a 5xx and always JSON.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard::adapters::embedded::Database;
use switchyard::domain::access::Role;
use switchyard::domain::connector::{Catalog, HmacConfig, SchemeKind, SignatureEncoding};
use switchyard::domain::expr::Expr;
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::ids::{SpaceId, TenantId};
use switchyard::domain::json;
use switchyard::domain::template;
use switchyard::domain::tenancy::Plan;
use switchyard::domain::webhook::envelope;
use switchyard::domain::webhook::signature::{SigningSecret, UnverifiedWebhook, VerifyOptions, sign};
use switchyard::engine::run::Budget;
use switchyard::ports::SystemClock;
use switchyard::runtime::{Platform, Settings};
use switchyard::store::tenants;
use switchyard::usecases::connect as credentials;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_795_000_000;

/// Headers and a body from fuzz input: `name: value` lines, an empty line, the body.
fn request(data: &[u8]) -> (HeaderMap, Bytes) {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let mut headers = HeaderMap::new();
    for line in data[..split].split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let body = Bytes::copy_from_slice(data.get(split + 2..).unwrap_or_default());
    (headers, body)
}

const SCHEMES: [SchemeKind; 6] = [
    SchemeKind::Github,
    SchemeKind::Shopify,
    SchemeKind::Stripe,
    SchemeKind::StandardWebhooks,
    SchemeKind::Slack,
    SchemeKind::Hmac,
];

fn hmac_config() -> HmacConfig {
    HmacConfig {
        header: "x-signature".into(),
        encoding: SignatureEncoding::Hex,
        prefix: "v1=".into(),
        timestamp_header: Some("x-timestamp".into()),
        template: "{timestamp}.{method}.{url}.{header:x-id}.{body}".into(),
        id_header: Some("x-id".into()),
    }
}

/// The headers a provider would send for `body`, so the fuzzer also reaches what follows a
/// good signature.
fn sign_as(scheme: SchemeKind, headers: &mut HeaderMap, body: &[u8]) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    match scheme {
        SchemeKind::Github => set("x-hub-signature-256", sign::github(SECRET, body)),
        SchemeKind::Shopify => set("x-shopify-hmac-sha256", sign::shopify(SECRET, body)),
        SchemeKind::Stripe => set("stripe-signature", sign::stripe(SECRET, NOW, body)),
        SchemeKind::StandardWebhooks => {
            set("webhook-id", "msg_fuzz".into());
            set("webhook-timestamp", NOW.to_string());
            set("webhook-signature", sign::standard(SECRET, "msg_fuzz", NOW, body));
        }
        SchemeKind::Slack => {
            set("x-slack-request-timestamp", NOW.to_string());
            set("x-slack-signature", sign::slack(SECRET, NOW, body));
        }
        SchemeKind::Hmac => {}
    }
}

/// Signature verification of every scheme over arbitrary headers and bodies, then the
/// envelope of what verified.
pub fn webhook_signature(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let scheme = SCHEMES[usize::from(selector) % SCHEMES.len()];
    let (mut headers, body) = request(rest);
    if selector & 0x80 != 0 {
        sign_as(scheme, &mut headers, &body);
    }
    let config = hmac_config();
    let secrets = [SigningSecret::new(SECRET), SigningSecret::new("previous-secret")];
    let verified = UnverifiedWebhook::new(headers, body).with_request_line("POST", "/webhooks/t/c?x=1").verify(
        scheme,
        Some(&config),
        &secrets,
        &VerifyOptions::at(NOW),
    );
    if let Ok(verified) = verified {
        let content_type = verified.header("content-type").map(str::to_string);
        let _ = envelope::payload_json(content_type.as_deref(), verified.body());
        let _ = envelope::parse_payload(content_type.as_deref(), verified.body());
    }
}

/// Delivery ids and event types, as every catalog connector reads them, from deliveries that
/// verified.
pub fn delivery_id(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let catalog = Catalog::builtin();
    let specs: Vec<_> = catalog.all().filter(|c| c.webhook.is_some()).collect();
    let spec = specs[usize::from(selector) % specs.len()];
    let Some(webhook) = &spec.webhook else { return };
    let (mut headers, body) = request(rest);
    sign_as(webhook.scheme, &mut headers, &body);
    let config = webhook.hmac.clone().unwrap_or_else(hmac_config);
    let verified = UnverifiedWebhook::new(headers, body).verify(
        webhook.scheme,
        Some(&config),
        &[SigningSecret::new(SECRET)],
        &VerifyOptions::at(NOW),
    );
    let Ok(verified) = verified else { return };
    let payload = if envelope::needs_body(webhook) {
        envelope::parse_payload(verified.header("content-type"), verified.body()).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let id = envelope::delivery_id(webhook, &verified, &payload);
    assert!(!id.is_empty(), "a delivery always has an id");
    assert!(id.chars().count() <= envelope::MAX_DELIVERY_ID_CHARS.max(71), "ids are bounded: {id:.80}");
    let _ = envelope::delivery_key(&id);
    let _ = envelope::event_type(webhook, &verified, &payload);
    let _ = envelope::selected_headers(webhook, &verified);
}

/// Flow documents, as JSON and as YAML; what parses reads back equal from its stored form.
pub fn flow_document(data: &[u8]) {
    let catalog = Catalog::builtin();
    let mut documents = Vec::new();
    if let Ok(value) = json::parse(data) {
        documents.push(value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(value) = serde_saphyr::from_str::<Value>(text) {
            if json::check_value(&value).is_ok() {
                documents.push(value);
            }
        }
    }
    for document in documents {
        if let Ok(flow) = FlowDefinition::parse(&document, catalog) {
            let stored = FlowDefinition::from_stored(&flow.to_value()).expect("a parsed flow reads back");
            assert_eq!(stored, flow, "stored form differs");
        }
    }
}

fn context() -> &'static Value {
    static CONTEXT: OnceLock<Value> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        json!({
            "trigger": {"payload": {"id": 7, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}], "name": "Ada"}},
            "steps": {"a": {"status": "succeeded", "output": {"n": 1, "list": [1, 2, 3]}}},
            "vars": {"channel": "#ops"}, "config": {}, "execution": {"id": "ex_1", "tenant": "t"}
        })
    })
}

/// jq expressions (compiled and evaluated) and, when the input is JSON, templates.
pub fn expression(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = Expr::compile(source) {
        let _ = expr.eval(context());
        let _ = expr.eval_all(context());
    }
    if let Ok(value) = json::parse(data) {
        if template::check(&value).is_ok() {
            let _ = template::render(&value, context());
        }
    }
    let as_template = Value::String(source.to_string());
    if template::check(&as_template).is_ok() {
        let _ = template::render(&as_template, context());
    }
}

/// Pagination cursors: a forged one is refused, never read outside its prefix.
pub fn cursor(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let prefix = ["EX#", "FLOW#", "", "TENANT#"][usize::from(selector) % 4];
    if let Ok(sk) = switchyard::ports::cursor::decode(text, prefix) {
        assert!(sk.starts_with(prefix));
        assert_eq!(
            switchyard::ports::cursor::decode(&switchyard::ports::cursor::encode(&sk), prefix).as_deref(),
            Ok(&*sk)
        );
    }
}

/// OAuth states as the callback receives them: only a signature with the key passes.
pub fn oauth_state(data: &[u8]) {
    let Ok(state) = std::str::from_utf8(data) else { return };
    let key = b"fuzz-state-key-fuzz-state-key-12";
    if let Ok(claims) = credentials::verify_state(key, state, 0) {
        // Anything accepted was signed with the key: re-signing gives the same state.
        assert_eq!(credentials::sign_state(key, &claims).len(), state.len());
    }
    let _ = credentials::verify_state(b"another-key", state, i64::MAX);
}

/// One process-wide platform on an in-memory database, with a space, a tenant and a key.
struct World {
    runtime: tokio::runtime::Runtime,
    platform: Platform,
    key: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let platform =
            Platform::embedded(Database::in_memory(), Arc::new(SystemClock), Settings::for_embedded(":memory:"))
                .expect("platform");
        let key = runtime.block_on(async {
            let space = SpaceId::parse("fuzz").expect("id");
            let tenant = TenantId::parse("fuzz-tenant").expect("id");
            tenants::create_space(platform.db(), space.clone(), "Fuzz".into(), Plan::Enterprise).await.expect("space");
            tenants::create_tenant(platform.db(), &space, tenant, "Fuzz".into(), None).await.expect("tenant");
            let (_, key) = tenants::create_api_key(platform.db(), &space, "fuzz".into(), Role::Admin, None, None, None)
                .await
                .expect("key");
            key
        });
        World { runtime, platform, key }
    })
}

/// MCP JSON-RPC messages, under each protocol version: never a 5xx, always a JSON answer
/// (or none, for notifications).
pub fn mcp_message(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    let w = world();
    let version = ["2025-03-26", "2025-06-18", "2025-11-25", ""][usize::from(selector) % 4];
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("content-type", "application/json")
        .header("x-fastn-api-key", &w.key)
        .header("x-fastn-space-id", "fuzz")
        .header("x-fastn-space-tenantid", "fuzz-tenant");
    if !version.is_empty() {
        builder = builder.header("mcp-protocol-version", version);
    }
    let Ok(req) = builder.body(Bytes::copy_from_slice(body)) else { return };
    let response = w.runtime.block_on(switchyard_mcp::handle(&w.platform, req));
    let status = response.status().as_u16();
    assert!(status < 500, "MCP answered {status}");
    if status != 202 {
        assert!(serde_json::from_slice::<Value>(response.body()).is_ok(), "MCP answered with no JSON");
    }
}

/// Run messages as the executor receives them from the queue.
pub fn run_message(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let w = world();
    let _ = w.runtime.block_on(switchyard::engine::run::process(&w.platform.engine, body, Budget::unlimited()));
}

/// The platform's JSON rules: what `check_text` accepts parses, and stays within the depth.
pub fn json_document(data: &[u8]) {
    let checked = json::check_text(data);
    let parsed = json::parse(data);
    assert_eq!(checked.is_ok(), parsed.is_ok(), "check_text and parse disagree");
    if let Ok(value) = parsed {
        assert!(json::depth(&value) <= json::MAX_DEPTH);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = json::top_level_strings(text, &["type", "space"]);
    }
    for content_type in [None, Some("application/json"), Some("application/x-www-form-urlencoded"), Some("text/plain")]
    {
        let _ = envelope::payload_json(content_type, data);
    }
}

#[cfg(test)]
mod replay {
    use std::path::Path;

    /// Every committed input of a target, corpus and regressions.
    fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    found.push((entry.path().display().to_string(), bytes));
                }
            }
        }
        found
    }

    macro_rules! replay {
        ($($target:ident),* $(,)?) => {$(
            #[test]
            fn $target() {
                let inputs = inputs(stringify!($target));
                assert!(!inputs.is_empty(), "no committed inputs for {}", stringify!($target));
                for (name, data) in inputs {
                    let outcome = std::panic::catch_unwind(|| super::$target(&data));
                    assert!(outcome.is_ok(), "{name} fails {}", stringify!($target));
                }
            }
        )*};
    }

    replay!(
        webhook_signature,
        delivery_id,
        flow_document,
        expression,
        cursor,
        oauth_state,
        mcp_message,
        run_message,
        json_document,
    );
}
