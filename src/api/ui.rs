//! The dashboard at `/ui/`: the files of the top-level `ui/` folder, compiled
//! into the binary with `include_bytes!`, so `cargo build` needs no Node step and
//! the page needs no CDN.
//!
//! Caching: `index.html` names its scripts and styles `app.js?v=<version>`, the
//! version being a hash of the assets, so those answers may be cached for a year
//! (`immutable`) and a new build changes their URLs. `index.html` itself, and any
//! asset asked for without the current version, is `no-cache`: revalidated on each
//! load through its `ETag` (a 304 without a body).
//!
//! Every URL in the page is relative (`app.js`, `../tasks`), so the dashboard
//! works unchanged behind a path-prefix proxy (`/celeriac/ui/`). For the same
//! reason `/ui` redirects to the relative `ui/`, never to an absolute path.

use std::{
    hash::{DefaultHasher, Hasher},
    sync::LazyLock,
};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "boot.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/boot.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/app.css"),
    },
];

const INDEX_TEMPLATE: &str = include_str!("../../ui/index.html");

/// Scripts and styles come only from this origin; the page fetches only its API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What is computed once from the embedded files.
struct Built {
    version: String,
    index: String,
    index_etag: String,
    etags: Vec<String>,
}

fn hash(parts: &[&[u8]]) -> String {
    // SipHash with fixed keys: stable within one binary, which is all an ETag needs.
    let mut h = DefaultHasher::new();
    for p in parts {
        h.write(p);
    }
    format!("{:016x}", h.finish())
}

static BUILT: LazyLock<Built> = LazyLock::new(|| {
    let bodies: Vec<&[u8]> = ASSETS.iter().map(|a| a.body).collect();
    let version = hash(&bodies);
    let index = INDEX_TEMPLATE.replace("@VERSION@", &version);
    Built {
        index_etag: format!("\"{}\"", hash(&[index.as_bytes()])),
        etags: ASSETS.iter().map(|a| format!("\"{}\"", hash(&[a.body]))).collect(),
        version,
        index,
    }
});

/// The version embedded in asset URLs (a hash of the assets).
pub fn version() -> &'static str {
    &BUILT.version
}

/// Serves `/ui` and everything under `/ui/`; mount with `nest_no_strip("/ui", ..)`.
pub struct Dashboard;

impl Endpoint for Dashboard {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
        }
        let path = req.uri().path();
        let Some(rest) = path.strip_prefix("/ui") else {
            return Ok(StatusCode::NOT_FOUND.into_response());
        };
        let built = &*BUILT;
        match rest {
            // Relative, so `/celeriac/ui` goes to `/celeriac/ui/` behind a proxy.
            "" => Ok(Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(header::LOCATION, "ui/")
                .finish()),
            "/" | "/index.html" => Ok(answer(
                &req,
                "text/html; charset=utf-8",
                built.index.as_bytes(),
                &built.index_etag,
                "no-cache",
            )),
            _ => {
                let name = &rest[1..];
                let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
                    return Ok(StatusCode::NOT_FOUND.into_response());
                };
                let current = req
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("v=") == Some(&built.version)));
                let cache = if current {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                let a = &ASSETS[i];
                Ok(answer(&req, a.content_type, a.body, &built.etags[i], cache))
            }
        }
    }
}

fn answer(req: &Request, content_type: &'static str, body: &'static [u8], etag: &str, cache: &'static str) -> Response {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(header::ETAG, HeaderValue::from_str(etag).expect("hex etag"))
        .header(header::CACHE_CONTROL, cache)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::REFERRER_POLICY, "no-referrer");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder.content_type(content_type).body(body)
}

#[cfg(test)]
mod tests {
    use poem::{Route, http::Uri};

    use super::*;

    /// One request through a route mounted as `build_app` mounts it.
    async fn get(method: Method, uri: &str, if_none_match: Option<&str>) -> Response {
        let app = Route::new().nest_no_strip("/ui", Dashboard);
        let mut req = Request::builder().method(method).uri(Uri::try_from(uri).unwrap());
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        app.get_response(req.finish()).await
    }

    fn header_of(resp: &Response, name: header::HeaderName) -> String {
        resp.headers()[name].to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn bare_ui_redirects_relatively_to_the_slash_url() {
        let resp = get(Method::GET, "/ui", None).await;
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(header_of(&resp, header::LOCATION), "ui/");
    }

    #[tokio::test]
    async fn index_names_versioned_relative_assets_and_revalidates() {
        let resp = get(Method::GET, "/ui/", None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header_of(&resp, header::CACHE_CONTROL), "no-cache");
        let etag = header_of(&resp, header::ETAG);
        let html = resp.into_body().into_string().await.unwrap();
        assert!(html.contains(&format!("src=\"app.js?v={}\"", version())), "{html}");
        assert!(!html.contains("@VERSION@"));
        assert!(
            !html.contains("=\"/"),
            "an absolute URL would break behind a prefix proxy"
        );

        let again = get(Method::GET, "/ui/", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn versioned_assets_are_immutable_and_others_revalidate() {
        let resp = get(Method::GET, &format!("/ui/app.js?v={}", version()), None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header_of(&resp, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header_of(&resp, header::CONTENT_TYPE), "text/javascript; charset=utf-8");
        let old = get(Method::GET, "/ui/app.css?v=old", None).await;
        assert_eq!(header_of(&old, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            get(Method::GET, "/ui/missing.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::POST, "/ui/", None).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn scripts_use_only_relative_urls() {
        let js = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(js.contains("const API = '../';"));
        for absolute in ["fetch('/", "EventSource('/", "http://", "https://"] {
            assert!(!js.contains(absolute), "absolute URL {absolute:?} in app.js");
        }
    }
}
