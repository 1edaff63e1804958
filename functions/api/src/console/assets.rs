//! The console's stylesheet and script, embedded in the binary and served under names that
//! carry a hash of their content, so a browser may keep them for a year: a new build that
//! changes one changes its name.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use switchyard::runtime::http::Response;

use super::BASE;

struct Asset {
    name: &'static str,
    ext: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "console",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        name: "console",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
    Asset { name: "icon", ext: "svg", content_type: "image/svg+xml", body: include_str!("assets/icon.svg") },
];

/// Each asset's served file name (`console.{hash}.css`), computed once.
fn names() -> &'static [String; ASSETS.len()] {
    static NAMES: OnceLock<[String; ASSETS.len()]> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS.each_ref().map(|a| {
            let hash = hex::encode(&Sha256::digest(a.body.as_bytes())[..8]);
            format!("{}.{hash}.{}", a.name, a.ext)
        })
    })
}

/// The URL of `file` (`console.css`, `console.js`, `icon.svg`).
pub fn url(file: &str) -> String {
    let served = ASSETS
        .iter()
        .zip(names())
        .find(|(a, _)| format!("{}.{}", a.name, a.ext) == file)
        .map(|(_, n)| n.as_str())
        .unwrap_or(file);
    format!("{BASE}/assets/{served}")
}

/// `GET /console/assets/{name}`.
pub fn serve(name: &str) -> Response {
    let Some((asset, _)) = ASSETS.iter().zip(names()).find(|(_, n)| n.as_str() == name) else {
        return super::view::error_page(404, "No such file.");
    };
    let mut response = http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, asset.content_type)
        .header(http::header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .body(bytes::Bytes::from_static(asset.body.as_bytes()))
        .unwrap_or_else(|_| http::Response::new(bytes::Bytes::new()));
    super::view::secure(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_under_their_hashed_names_only() {
        let css = url("console.css");
        assert!(css.starts_with("/console/assets/console.") && css.ends_with(".css"), "{css}");
        let name = css.trim_start_matches("/console/assets/");
        let response = serve(name);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(serve("console.css").status(), 404, "the unhashed name is not served");
        assert_eq!(serve("console.0000000000000000.css").status(), 404);
    }
}
