//! The one client for every call to a third party: rustls, timeouts, a response size limit,
//! redirects followed by hand (each target re-checked), and the SSRF guard of [`ssrf`].

pub mod ssrf;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use url::{Host, Url};

use crate::ports::{Http, OutboundError, OutboundRequest, OutboundResponse};
use ssrf::AddressPolicy;

/// Largest response body read from a third party.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Resolves names with the system resolver and refuses any name with a forbidden address.
#[derive(Clone)]
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    /// Names answered from this table instead of DNS (tests; empty in production).
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        let fixed = self.hosts.get(&host.to_ascii_lowercase()).cloned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match fixed {
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(reason) = addrs.iter().find_map(|a| policy.check(a.ip())) {
                return Err(Box::new(Refused(format!("{host} resolves to a {reason}")))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Marker error so a refused resolution is reported as `Forbidden`, not as a connect failure.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// `Http` over reqwest with the SSRF guard.
pub struct OutboundClient {
    /// Built on the first call out: building it loads the system's TLS roots (a directory of
    /// certificate files), a large part of a cold start, and many functions' first requests
    /// (every receiver's) never call out.
    client: OnceLock<Result<reqwest::Client, String>>,
    resolver: GuardedResolver,
    policy: Arc<AddressPolicy>,
    max_response_bytes: usize,
}

/// Request headers that may follow a redirect to another origin.
const CROSS_ORIGIN_HEADERS: &[&str] = &["accept", "accept-language", "content-type", "user-agent"];

impl OutboundClient {
    pub fn new(policy: AddressPolicy) -> Result<Self, String> {
        OutboundClient::with_hosts(policy, HashMap::new())
    }

    /// A client whose resolver answers the given names from a table (like /etc/hosts), for
    /// tests that need a name to resolve to a forbidden address. The guard checks those
    /// answers exactly as it checks DNS.
    pub fn with_hosts(policy: AddressPolicy, hosts: HashMap<String, Vec<IpAddr>>) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver { policy: policy.clone(), hosts: Arc::new(hosts) };
        Ok(OutboundClient { client: OnceLock::new(), resolver, policy, max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES })
    }

    /// The reqwest client, built on first use (see the field).
    fn client(&self) -> Result<&reqwest::Client, OutboundError> {
        let built = self.client.get_or_init(|| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(self.resolver.clone()))
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would connect on our behalf to wherever it is told: bypassing the guard.
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .pool_idle_timeout(Duration::from_secs(50))
                .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("HTTP client: {e}"))
        });
        built.as_ref().map_err(|e| OutboundError::Connect(e.clone()))
    }

    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Refuse URLs that are not http(s) or whose literal IP host is forbidden. Names are checked
    /// by the resolver when the connection is made.
    fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Forbidden(format!("scheme {} is not allowed", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Invalid("credentials in the URL are not allowed".into()));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(name)) => {
                // `localhost` never needs a lookup to be known as loopback.
                if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
                    IpAddr::from([127, 0, 0, 1])
                } else {
                    return Ok(());
                }
            }
            None => return Err(OutboundError::Invalid("URL without a host".into())),
        };
        match self.policy.check(ip) {
            Some(reason) => Err(OutboundError::Forbidden(format!("{ip} is a {reason}"))),
            None => Ok(()),
        }
    }

    async fn send_once(
        &self,
        request: &OutboundRequest,
        url: &Url,
        method: &http::Method,
        body: Option<&Bytes>,
        strip_auth: bool,
    ) -> Result<reqwest::Response, OutboundError> {
        let mut builder = self.client()?.request(method.clone(), url.clone()).timeout(request.timeout);
        for (name, value) in &request.headers {
            // After a redirect to another origin only content negotiation headers go on:
            // credentials travel in many custom headers (X-Api-Key, X-Shopify-Access-Token…),
            // so anything not known to be harmless is dropped.
            if strip_auth && !CROSS_ORIGIN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            builder = builder.body(body.clone());
        }
        builder.send().await.map_err(classify)
    }
}

fn classify(e: reqwest::Error) -> OutboundError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return OutboundError::Forbidden(refused.0.clone());
        }
        source = err.source();
    }
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_builder() {
        OutboundError::Invalid(e.to_string())
    } else {
        // Connection refused, reset, TLS failure, DNS failure: all worth a retry.
        OutboundError::Connect(without_url(&e))
    }
}

/// reqwest's messages include the URL, which may carry a query-string API key.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[async_trait]
impl Http for OutboundClient {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let mut url = request.url.clone();
        let mut method = request.method.clone();
        let mut body = request.body.clone();
        let origin = url.origin();
        let mut strip_auth = false;
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&url)?;
            let mut response = self.send_once(&request, &url, &method, body.as_ref(), strip_auth).await?;
            let status = response.status();
            if status.is_redirection() && status != http::StatusCode::NOT_MODIFIED {
                if let Some(location) = response.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()) {
                    let next =
                        url.join(location).map_err(|_| OutboundError::Invalid("bad redirect location".into()))?;
                    // 303, and 301/302 after a POST, turn into a GET without body (as browsers do).
                    if status == http::StatusCode::SEE_OTHER
                        || (matches!(status.as_u16(), 301 | 302) && method == http::Method::POST)
                    {
                        method = http::Method::GET;
                        body = None;
                    }
                    // Credentials never follow a redirect to another origin, and neither does a
                    // body (307/308 keep it): it may hold a client secret or a refresh token.
                    if next.origin() != origin && body.is_some() {
                        return Err(OutboundError::Forbidden(format!(
                            "a {status} redirect would carry the request body to another origin ({})",
                            next.origin().ascii_serialization()
                        )));
                    }
                    strip_auth = strip_auth || next.origin() != origin;
                    url = next;
                    continue;
                }
            }
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                .collect();
            if response.content_length().is_some_and(|n| n > self.max_response_bytes as u64) {
                return Err(OutboundError::TooLarge(self.max_response_bytes));
            }
            let mut buffer = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if buffer.len() + chunk.len() > self.max_response_bytes {
                    return Err(OutboundError::TooLarge(self.max_response_bytes));
                }
                buffer.extend_from_slice(&chunk);
            }
            return Ok(OutboundResponse { status: status.as_u16(), headers, body: buffer.freeze() });
        }
        Err(OutboundError::TooManyRedirects)
    }
}
