//! `GET /api/v1/oauth/callback`: where providers send the tenant back after consent. Public
//! (the browser carries no API key); the signed state is the authentication.

use serde_json::{Value, json};
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, json as json_response, query};
use switchyard::usecases::connect::{self, StateKey};

pub async fn callback(p: &Platform, req: &Request) -> Result<Response, AppError> {
    let q = query(req);
    if let Some(error) = q.get("error") {
        // The tenant declined, or the provider refused: nothing to store.
        let error: String = error.chars().take(100).collect();
        return Err(AppError::invalid("authorization_denied", format!("the provider returned {error:?}"), Value::Null));
    }
    let (Some(code), Some(state)) = (q.get("code"), q.get("state")) else {
        return Err(AppError::bad_request("the callback needs `code` and `state`"));
    };
    if code.len() > 4096 || state.len() > 4096 {
        return Err(AppError::bad_request("callback parameters too long"));
    }
    let state_key = StateKey::of(p.admin_key.as_ref()).await?;
    let connected = connect::complete_connect(&p.engine, &state_key, state, code).await?;
    tracing::info!(space = %connected.space, tenant = %connected.tenant, connector = %connected.connector, "connector connected");
    match connected.return_to {
        Some(to) => {
            let mut url = url::Url::parse(&to).map_err(|_| AppError::bad_request("stored return_to is invalid"))?;
            url.query_pairs_mut().append_pair("connected", connected.connector.as_str());
            Ok(http::Response::builder()
                .status(302)
                .header(http::header::LOCATION, url.as_str())
                .header(http::header::CACHE_CONTROL, "no-store")
                .body(bytes::Bytes::new())
                .unwrap_or_else(|_| json_response(200, &json!({}))))
        }
        None => Ok(json_response(
            200,
            &json!({"status": "connected", "tenant": connected.tenant, "connector": connected.connector}),
        )),
    }
}
