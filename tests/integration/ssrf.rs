//! The SSRF guard refuses every internal destination, however it is spelled, resolved or
//! reached through a redirect; it lets public destinations and the explicit allow-list through.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use switchyard::adapters::outbound::OutboundClient;
use switchyard::adapters::outbound::ssrf::AddressPolicy;
use switchyard::ports::{Http, OutboundError, OutboundRequest};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A client that may reach 127.0.0.1 only (where the mock servers run) and answers the test
/// names from a table.
fn client() -> OutboundClient {
    let hosts: HashMap<String, Vec<IpAddr>> = [
        ("metadata.attacker.test", vec!["169.254.169.254".parse().unwrap()]),
        ("internal.attacker.test", vec!["10.1.2.3".parse().unwrap()]),
        ("v6.attacker.test", vec!["::1".parse().unwrap()]),
        ("mapped.attacker.test", vec!["::ffff:192.168.1.1".parse().unwrap()]),
        ("cgnat.attacker.test", vec!["100.64.0.7".parse().unwrap()]),
        // Rebinding: one public and one private answer.
        ("rebind.attacker.test", vec!["93.184.215.14".parse().unwrap(), "127.0.0.2".parse().unwrap()]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    OutboundClient::with_hosts(AddressPolicy::from_allow_list("127.0.0.1/32").unwrap(), hosts).unwrap()
}

async fn get(client: &OutboundClient, url: &str) -> Result<u16, OutboundError> {
    let url = url::Url::parse(url).map_err(|e| OutboundError::Invalid(e.to_string()))?;
    let mut request = OutboundRequest::new(http::Method::GET, url);
    request.timeout = Duration::from_secs(3);
    client.send(request).await.map(|r| r.status)
}

#[tokio::test]
async fn internal_destinations_are_refused() {
    let client = client();
    let forbidden = [
        // IPv4 literals
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://198.18.0.1/",
        // other spellings the URL parser turns into those addresses
        "http://2852039166/",          // 169.254.169.254 as one decimal number
        "http://0251.0376.0251.0376/", // 169.254.169.254 in octal
        "http://0xa9fea9fe/",          // 169.254.169.254 in hex
        "http://10.1/",                // 10.0.0.1 shortened
        "http://127.000.000.002/",
        // IPv6
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:7f00:2]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[ff02::1]/",
        // names
        "http://metadata.attacker.test/",
        "http://internal.attacker.test/",
        "http://v6.attacker.test/",
        "http://mapped.attacker.test/",
        "http://cgnat.attacker.test/",
        "http://rebind.attacker.test/",
    ];
    let mut refused = 0;
    for url in forbidden {
        let result = get(&client, url).await;
        assert!(matches!(result, Err(OutboundError::Forbidden(_))), "{url} must be refused, got {result:?}");
        refused += 1;
    }
    assert!(refused >= 20, "{refused}");
    // Without an allow-list (production), loopback is refused in every form too.
    let production = OutboundClient::new(AddressPolicy::default()).unwrap();
    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://api.localhost/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let result = get(&production, url).await;
        assert!(matches!(result, Err(OutboundError::Forbidden(_))), "{url} must be refused, got {result:?}");
    }
    for url in ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/"] {
        assert!(matches!(get(&client, url).await, Err(OutboundError::Forbidden(_))), "{url}");
    }
    assert!(matches!(get(&client, "http://user:pass@example.com/").await, Err(OutboundError::Invalid(_))));
}

#[tokio::test]
async fn redirects_to_internal_destinations_are_refused() {
    let server = MockServer::start().await;
    for (route, target) in [
        ("/to-metadata", "http://169.254.169.254/latest/meta-data/iam/"),
        ("/to-private", "http://10.0.0.1/admin"),
        ("/to-v6-loopback", "http://[::1]:8080/"),
        ("/to-decimal", "http://2130706434/"),
        ("/to-name", "http://metadata.attacker.test/"),
        ("/to-file", "file:///etc/passwd"),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(302).insert_header("location", target))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/hop"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/to-metadata"))
        .mount(&server)
        .await;
    let client = client();
    for route in ["/to-metadata", "/to-private", "/to-v6-loopback", "/to-decimal", "/to-name", "/to-file", "/hop"] {
        let result = get(&client, &format!("{}{route}", server.uri())).await;
        assert!(matches!(result, Err(OutboundError::Forbidden(_))), "{route} must be refused, got {result:?}");
    }
}

#[tokio::test]
async fn allowed_destinations_and_redirects_work_and_credentials_do_not_follow_off_origin() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/start"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/end"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/end"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let client = client();
    assert_eq!(get(&client, &format!("{}/start", server.uri())).await.unwrap(), 200);

    // Redirect loops end.
    Mock::given(method("GET"))
        .and(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    assert_eq!(get(&client, &format!("{}/loop", server.uri())).await, Err(OutboundError::TooManyRedirects));

    // An Authorization header is not replayed to another origin (another port is another origin).
    let other = MockServer::start().await;
    Mock::given(method("GET")).and(path("/landing")).respond_with(ResponseTemplate::new(200)).mount(&other).await;
    Mock::given(method("GET"))
        .and(path("/cross"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", format!("{}/landing", other.uri())))
        .mount(&server)
        .await;
    let mut request =
        OutboundRequest::new(http::Method::GET, url::Url::parse(&format!("{}/cross", server.uri())).unwrap())
            .header("Authorization", "Bearer top-secret-token")
            .header("X-Api-Key", "api-key-secret")
            .header("X-Shopify-Access-Token", "shpat-secret")
            .header("Cookie", "session=secret")
            .header("Accept", "application/json");
    request.timeout = Duration::from_secs(3);
    assert_eq!(client.send(request).await.unwrap().status, 200);
    let landed = other.received_requests().await.unwrap();
    assert_eq!(landed.len(), 1);
    for name in ["authorization", "x-api-key", "x-shopify-access-token", "cookie"] {
        assert!(landed[0].headers.get(name).is_none(), "{name} must not follow a cross-origin redirect");
    }
    assert_eq!(landed[0].headers.get("accept").unwrap(), "application/json", "content negotiation does");
    // The same origin keeps them.
    let first = server.received_requests().await.unwrap();
    let cross = first.iter().find(|r| r.url.path() == "/cross").unwrap();
    assert_eq!(cross.headers.get("x-api-key").unwrap(), "api-key-secret");

    // A 307 keeps method and body: to another origin that would hand over what the body holds
    // (a client secret, a refresh token), so it is refused and nothing reaches the other side.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", format!("{}/landing", other.uri())))
        .mount(&server)
        .await;
    let mut request =
        OutboundRequest::new(http::Method::POST, url::Url::parse(&format!("{}/token", server.uri())).unwrap());
    request.body = Some(bytes::Bytes::from_static(b"grant_type=refresh_token&refresh_token=rt-secret"));
    request.timeout = Duration::from_secs(3);
    assert!(matches!(client.send(request).await, Err(OutboundError::Forbidden(m)) if m.contains("another origin")));
    assert_eq!(other.received_requests().await.unwrap().len(), 1, "only the earlier GET landed");
}

#[tokio::test]
async fn oversized_responses_are_cut_off() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 64 * 1024]))
        .mount(&server)
        .await;
    let client = client().with_max_response_bytes(16 * 1024);
    assert_eq!(get(&client, &format!("{}/big", server.uri())).await, Err(OutboundError::TooLarge(16 * 1024)));
}
