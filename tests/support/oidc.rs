//! A local OpenID Connect issuer for the tests: discovery and a JWKS on 127.0.0.1, keys
//! generated per test (RSA, EC P-256, Ed25519), tokens minted with them, the JWKS swappable
//! (rotation), countable (fetches) and switchable off (an identity provider that is down).
//! Its token endpoint redeems authorization codes a test granted (`grant`), checking the PKCE
//! verifier against the challenge, as a provider does for the console's sign-in.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

/// The `RSAPrivateKey` (PKCS #1) inside a PKCS #8 document: the content of its last OCTET
/// STRING, which is what `EncodingKey::from_rsa_der` takes.
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    // DER: SEQUENCE { INTEGER 0, SEQUENCE { OID, NULL }, OCTET STRING { RSAPrivateKey } }
    fn read_len(b: &[u8], i: &mut usize) -> usize {
        let first = b[*i] as usize;
        *i += 1;
        if first < 0x80 {
            return first;
        }
        let n = first & 0x7f;
        let mut len = 0;
        for _ in 0..n {
            len = (len << 8) | b[*i] as usize;
            *i += 1;
        }
        len
    }
    let mut i = 1;
    read_len(pkcs8, &mut i); // outer SEQUENCE
    for _ in 0..2 {
        i += 1;
        let l = read_len(pkcs8, &mut i);
        i += l; // version, algorithm identifier
    }
    assert_eq!(pkcs8[i], 0x04, "PKCS #8 private key octet string");
    i += 1;
    let l = read_len(pkcs8, &mut i);
    pkcs8[i..i + l].to_vec()
}

impl SigningKey {
    fn with(kid: &str, alg: Algorithm, encoding: EncodingKey) -> SigningKey {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("public JWK")).expect("jwk");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        SigningKey { kid: kid.into(), alg, encoding, jwk }
    }

    pub fn rsa(kid: &str) -> SigningKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let pkcs8 = pair.as_der().expect("PKCS #8");
        SigningKey::with(kid, Algorithm::RS256, EncodingKey::from_rsa_der(&pkcs1_of(pkcs8.as_ref())))
    }

    pub fn ec(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("EC key");
        SigningKey::with(kid, Algorithm::ES256, EncodingKey::from_ec_der(pkcs8.as_ref()))
    }

    pub fn ed(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("Ed25519 key");
        SigningKey::with(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(pkcs8.as_ref()))
    }

    /// A token with these claims, signed with this key (its `kid` in the header).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

fn json_response(value: &Value) -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// The issuer: its URL, what its JWKS serves, and how often it was fetched.
#[derive(Clone)]
pub struct MockIssuer {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub jwks_fetches: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    /// Codes granted: code → (the PKCE challenge it was granted for, the ID token it redeems for).
    pub codes: Arc<Mutex<std::collections::HashMap<String, (String, String)>>>,
    /// The forms the token endpoint received.
    pub token_requests: Arc<Mutex<Vec<std::collections::HashMap<String, String>>>>,
}

impl MockIssuer {
    pub async fn start() -> MockIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/realms/test", listener.local_addr().expect("addr"));
        let issuer = MockIssuer {
            url: url.clone(),
            keys: Arc::new(Mutex::new(Vec::new())),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
            codes: Arc::default(),
            token_requests: Arc::default(),
        };
        let (codes, token_requests) = (issuer.codes.clone(), issuer.token_requests.clone());
        let (keys, fetches, down) = (issuer.keys.clone(), issuer.jwks_fetches.clone(), issuer.down.clone());
        let discovery_down = issuer.down.clone();
        let discovery = json!({
            "issuer": url, "jwks_uri": format!("{url}/protocol/openid-connect/certs"),
            "authorization_endpoint": format!("{url}/protocol/openid-connect/auth"),
            "token_endpoint": format!("{url}/protocol/openid-connect/token"),
        });
        let app = axum::Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let (discovery, down) = (discovery.clone(), discovery_down.clone());
                    async move {
                        if down.load(Ordering::SeqCst) {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        json_response(&discovery)
                    }
                }),
            )
            .route(
                "/realms/test/protocol/openid-connect/certs",
                axum::routing::get(move || {
                    let (keys, fetches, down) = (keys.clone(), fetches.clone(), down.clone());
                    async move {
                        if down.load(Ordering::SeqCst) {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        json_response(&json!({"keys": keys}))
                    }
                }),
            )
            .route(
                "/realms/test/protocol/openid-connect/token",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let (codes, token_requests) = (codes.clone(), token_requests.clone());
                    async move {
                        let form: std::collections::HashMap<String, String> =
                            url::form_urlencoded::parse(&body).into_owned().collect();
                        token_requests.lock().unwrap_or_else(|p| p.into_inner()).push(form.clone());
                        let granted =
                            form.get("code").and_then(|c| codes.lock().unwrap_or_else(|p| p.into_inner()).remove(c));
                        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                        match granted {
                            Some((challenge, id_token)) if pkce_challenge(&verifier) == challenge => json_response(
                                &json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}),
                            ),
                            _ => {
                                let mut refused = json_response(&json!({"error": "invalid_grant"}));
                                *refused.status_mut() = StatusCode::BAD_REQUEST;
                                refused
                            }
                        }
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    /// Serve exactly these keys from now on (and, as Keycloak does, an encryption key the
    /// platform must skip).
    pub fn publish(&self, keys: &[&SigningKey]) {
        let mut all: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        all.push(json!({"kid": "enc-1", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": "sXch", "e": "AQAB"}));
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = all;
    }

    /// Grant `code` to whoever presents the verifier of `challenge`; it redeems for `id_token`.
    pub fn grant(&self, code: &str, challenge: &str, id_token: &str) {
        self.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(code.into(), (challenge.into(), id_token.into()));
    }

    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}
