//! Pagination of list actions, per the catalog's `pagination` styles: where the next page is,
//! given the page just read. Used by the poller to walk a whole resource.
//!
//! - `cursor`: jq over the response (`{status, headers, body}`) gives the next cursor (null or
//!   `""` ends); it is sent as the query parameter `param`, or as the top-level body field
//!   `param` with `in: body`.
//! - `link_header`: RFC 8288 `Link: <url>; rel="next"`; the next request is that URL (which
//!   must stay on the connector's origin, since it carries the tenant's credentials).
//! - `page`: the first request is the action's own (page `start`); later ones send
//!   `start + pages read` in `param`, until a page comes back empty.
//! - `offset`: the number of records read so far in `param`, until a page comes back empty.
//! - `none`: one page.

use serde_json::Value;

use crate::domain::connector::{CursorLocation, Pagination};
use crate::domain::expr::Expr;

/// How to ask for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// Set (replace) a query parameter.
    Query { param: String, value: String },
    /// Set a top-level field of the JSON body.
    Body { param: String, value: String },
    /// Request this absolute URL instead.
    Url(String),
}

/// Where a walk through the pages stands.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// Pages read so far.
    pub pages: u32,
    /// Records read so far.
    pub records: u64,
    /// Cursors and next-page URLs given so far: one given again would loop.
    given: std::collections::HashSet<String>,
}

impl Cursor {
    /// Whether `value` is a new next page. Given again after an empty page it is how some APIs
    /// say "nothing more" (`Ok(false)`: the end); after a page with records it would loop.
    fn first_time(&mut self, value: &str, records_on_page: usize) -> Result<bool, String> {
        if self.given.insert(value.to_string()) {
            Ok(true)
        } else if records_on_page == 0 {
            Ok(false)
        } else {
            Err(format!("the provider gave the next page {value:?} again; stopping instead of looping"))
        }
    }
}

/// The next page after one that returned `records_on_page` records with `response`, or `None`
/// when this was the last.
pub fn next_page(
    style: &Pagination,
    response: &Value,
    records_on_page: usize,
    cursor: &mut Cursor,
) -> Result<Option<PageRequest>, String> {
    cursor.pages += 1;
    cursor.records += records_on_page as u64;
    match style {
        Pagination::None => Ok(None),
        Pagination::Cursor { cursor_path, param, location } => {
            let next =
                Expr::compile(cursor_path).and_then(|e| e.eval(response)).map_err(|e| format!("cursor_path: {e}"))?;
            let value = match next {
                Value::Null => return Ok(None),
                Value::String(s) if s.is_empty() => return Ok(None),
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                other => return Err(format!("cursor_path gave {other}, not a string")),
            };
            if !cursor.first_time(&value, records_on_page)? {
                return Ok(None);
            }
            Ok(Some(match location {
                CursorLocation::Query => PageRequest::Query { param: param.clone(), value },
                CursorLocation::Body => PageRequest::Body { param: param.clone(), value },
            }))
        }
        Pagination::LinkHeader => {
            let header = response
                .get("headers")
                .and_then(Value::as_object)
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("link")).map(|(_, v)| v))
                .and_then(Value::as_str);
            match header.and_then(link_next) {
                Some(url) if cursor.first_time(&url, records_on_page)? => Ok(Some(PageRequest::Url(url))),
                Some(_) => Ok(None),
                None => Ok(None),
            }
        }
        Pagination::Page { param, start } => {
            if records_on_page == 0 {
                return Ok(None);
            }
            let next = start + u64::from(cursor.pages);
            Ok(Some(PageRequest::Query { param: param.clone(), value: next.to_string() }))
        }
        Pagination::Offset { param } => {
            if records_on_page == 0 {
                return Ok(None);
            }
            Ok(Some(PageRequest::Query { param: param.clone(), value: cursor.records.to_string() }))
        }
    }
}

/// The `rel="next"` target of an RFC 8288 Link header.
pub fn link_next(header: &str) -> Option<String> {
    // Links are separated by commas outside `<…>` (URLs may contain commas).
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>')? + open;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map(|i| close + i).unwrap_or(rest.len());
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next")))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &rest[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn link_headers_as_github_and_shopify_send_them() {
        let github = r#"<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", <https://api.github.com/repositories/1300192/issues?page=4>; rel="next", <https://api.github.com/repositories/1300192/issues?page=515>; rel="last""#;
        assert_eq!(link_next(github).as_deref(), Some("https://api.github.com/repositories/1300192/issues?page=4"));
        let shopify = r#"<https://acme.myshopify.com/admin/api/2025-07/orders.json?limit=250&page_info=eyJkaXJlY3Rpb24iOiJuZXh0In0>; rel="next""#;
        assert!(link_next(shopify).unwrap().ends_with("page_info=eyJkaXJlY3Rpb24iOiJuZXh0In0"));
        assert_eq!(link_next(r#"<https://x.test/a?p=1>; rel="previous""#), None);
        assert_eq!(link_next(r#"<https://x.test/a?ids=1,2>; rel="next""#).as_deref(), Some("https://x.test/a?ids=1,2"));
        assert_eq!(link_next(r#"<https://x.test/b>; title="x"; rel="prev next""#).as_deref(), Some("https://x.test/b"));
        assert_eq!(link_next(""), None);
        assert_eq!(link_next("<unclosed; rel=next"), None);
    }

    #[test]
    fn a_repeated_cursor_or_link_is_an_error_not_a_loop() {
        let style =
            Pagination::Cursor { cursor_path: ".body.next".into(), param: "c".into(), location: CursorLocation::Query };
        let mut c = Cursor::default();
        let page = json!({"body": {"next": "same"}});
        assert!(next_page(&style, &page, 1, &mut c).unwrap().is_some());
        assert!(next_page(&style, &page, 1, &mut c).unwrap_err().contains("again"));
        // The same cursor after an empty page is the end, not a loop.
        assert_eq!(next_page(&style, &page, 0, &mut c).unwrap(), None);
        let link = json!({"headers": {"link": "<https://api.github.com/x?page=2>; rel=\"next\""}});
        let mut c = Cursor::default();
        assert!(next_page(&Pagination::LinkHeader, &link, 1, &mut c).unwrap().is_some());
        assert!(next_page(&Pagination::LinkHeader, &link, 1, &mut c).is_err());
    }

    #[test]
    fn each_style_finds_the_next_page_and_the_end() {
        let cursor_style = Pagination::Cursor {
            cursor_path: "if .body.has_more then .body.data[-1].id else null end".into(),
            param: "starting_after".into(),
            location: CursorLocation::Query,
        };
        let mut c = Cursor::default();
        let more = json!({"status": 200, "headers": {}, "body": {"has_more": true, "data": [{"id": "cus_1"}, {"id": "cus_2"}]}});
        assert_eq!(
            next_page(&cursor_style, &more, 2, &mut c).unwrap(),
            Some(PageRequest::Query { param: "starting_after".into(), value: "cus_2".into() })
        );
        let last = json!({"body": {"has_more": false, "data": [{"id": "cus_3"}]}});
        assert_eq!(next_page(&cursor_style, &last, 1, &mut c).unwrap(), None);
        assert_eq!((c.pages, c.records), (2, 3));

        let body_style = Pagination::Cursor {
            cursor_path: ".body.next_cursor".into(),
            param: "start_cursor".into(),
            location: CursorLocation::Body,
        };
        let notion = json!({"body": {"next_cursor": "abc"}});
        assert_eq!(
            next_page(&body_style, &notion, 1, &mut Cursor::default()).unwrap(),
            Some(PageRequest::Body { param: "start_cursor".into(), value: "abc".into() })
        );
        assert_eq!(
            next_page(&body_style, &json!({"body": {"next_cursor": ""}}), 1, &mut Cursor::default()).unwrap(),
            None
        );
        assert!(next_page(&body_style, &json!({"body": {"next_cursor": [1]}}), 1, &mut Cursor::default()).is_err());

        let pages = Pagination::Page { param: "page".into(), start: 1 };
        let mut c = Cursor::default();
        assert_eq!(
            next_page(&pages, &json!({}), 100, &mut c).unwrap(),
            Some(PageRequest::Query { param: "page".into(), value: "2".into() })
        );
        assert_eq!(
            next_page(&pages, &json!({}), 100, &mut c).unwrap(),
            Some(PageRequest::Query { param: "page".into(), value: "3".into() })
        );
        assert_eq!(next_page(&pages, &json!({}), 0, &mut c).unwrap(), None);

        let offsets = Pagination::Offset { param: "offset".into() };
        let mut c = Cursor::default();
        assert_eq!(
            next_page(&offsets, &json!({}), 50, &mut c).unwrap(),
            Some(PageRequest::Query { param: "offset".into(), value: "50".into() })
        );
        assert_eq!(
            next_page(&offsets, &json!({}), 20, &mut c).unwrap(),
            Some(PageRequest::Query { param: "offset".into(), value: "70".into() })
        );
        assert_eq!(next_page(&offsets, &json!({}), 0, &mut c).unwrap(), None);

        let link = json!({"headers": {"Link": "<https://api.github.com/x?page=2>; rel=\"next\""}, "body": []});
        assert_eq!(
            next_page(&Pagination::LinkHeader, &link, 30, &mut Cursor::default()).unwrap(),
            Some(PageRequest::Url("https://api.github.com/x?page=2".into()))
        );
        assert_eq!(
            next_page(&Pagination::LinkHeader, &json!({"headers": {}}), 30, &mut Cursor::default()).unwrap(),
            None
        );
        assert_eq!(next_page(&Pagination::None, &link, 30, &mut Cursor::default()).unwrap(), None);
    }
}
