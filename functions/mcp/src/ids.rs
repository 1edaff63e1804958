//! JSON-RPC ids echoed exactly as sent.

use serde_json::Value;
use switchyard::runtime::http::Response;

/// JSON-RPC ids that would not come back as sent once parsed (numbers beyond what a double
/// holds exactly, `1e2`…): each is swapped for a unique string while the request is handled,
/// and the id's own text put back in the answer.
pub struct ExactIds {
    swapped: Vec<(String, String)>,
}

impl ExactIds {
    pub fn protect(message: &mut Value, body: &[u8]) -> ExactIds {
        use serde_json::value::RawValue;
        #[derive(serde::Deserialize)]
        struct IdOf<'a> {
            #[serde(borrow, default)]
            id: Option<&'a RawValue>,
        }
        let raw: Vec<Option<&RawValue>> = match message {
            Value::Array(_) => serde_json::from_slice::<Vec<IdOf<'_>>>(body)
                .map(|ids| ids.into_iter().map(|i| i.id).collect())
                .unwrap_or_default(),
            _ => serde_json::from_slice::<IdOf<'_>>(body).map(|i| vec![i.id]).unwrap_or_default(),
        };
        let mut swapped = Vec::new();
        let nonce: u64 = rand::random();
        let messages: Vec<&mut Value> = match message {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for (i, (m, raw)) in messages.into_iter().zip(raw).enumerate() {
            let (Some(id @ Value::Number(_)), Some(raw)) = (m.get_mut("id"), raw) else { continue };
            if serde_json::to_string(id).is_ok_and(|shown| shown != raw.get()) {
                let placeholder = format!("\u{1}swy-id-{nonce:016x}-{i}");
                *id = Value::String(placeholder.clone());
                swapped.push((serde_json::to_string(&placeholder).unwrap_or_default(), raw.get().to_string()));
            }
        }
        ExactIds { swapped }
    }

    pub fn restore(self, response: Response) -> Response {
        if self.swapped.is_empty() {
            return response;
        }
        let (parts, body) = response.into_parts();
        let mut text = String::from_utf8_lossy(&body).into_owned();
        for (placeholder, raw) in &self.swapped {
            text = text.replace(placeholder.as_str(), raw);
        }
        http::Response::from_parts(parts, bytes::Bytes::from(text))
    }
}
