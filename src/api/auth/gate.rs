//! Enforcement: the one middleware that decides the scope a request needs from
//! its method and path, and the extractor that only documents it.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, RequestBody, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::{Auth, MAX_URI_BYTES, Scope};
use crate::api::error::ApiError;

/// The scope a request needs, from its method and path alone; `None` = open.
///
/// | route | scope |
/// | --- | --- |
/// | `/healthz`, `/readyz`, `/docs…`, `/openapi.json` (GET) | open |
/// | `/metrics` (GET) | open, or `read` with `metrics_require_auth` |
/// | any other GET or HEAD | `read` |
/// | `POST /tasks`, `POST /tasks/batch`, `POST /workflows`, `POST /tasks/{id}/{cancel,retry,pause,resume}` | `write` |
/// | anything else (DELETE, queue pause/resume/purge, dead letter, schedules, …) | `admin` |
pub fn required_scope(method: &Method, path: &str, metrics_require_auth: bool) -> Option<Scope> {
    if *method == Method::GET || *method == Method::HEAD {
        return match path {
            "/healthz" | "/readyz" | "/openapi.json" | "/docs" | "/ui" => None,
            // The dashboard's static assets hold no data: the page asks for a token
            // and sends it with every API call it makes.
            p if p.starts_with("/docs/") || p.starts_with("/ui/") => None,
            "/metrics" if !metrics_require_auth => None,
            _ => Some(Scope::Read),
        };
    }
    if *method == Method::POST && is_write_path(path) {
        return Some(Scope::Write);
    }
    Some(Scope::Admin)
}

/// The write table. Anything it does not match exactly needs `admin`, so an
/// odd spelling of a path can only ask for more, never less.
fn is_write_path(path: &str) -> bool {
    match path {
        "/tasks" | "/tasks/batch" | "/workflows" => true,
        p => {
            let mut parts = p.strip_prefix("/tasks/").unwrap_or("").split('/');
            let (Some(id), Some(action), None) = (parts.next(), parts.next(), parts.next()) else {
                return false;
            };
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'{' | b'}'))
                && matches!(action, "cancel" | "retry" | "pause" | "resume")
        }
    }
}

/// Whether `?access_token=` is accepted on `path`: only the SSE stream, whose
/// browser client (`EventSource`) cannot set headers. Elsewhere a token in a
/// URL would land in proxies' and browsers' logs.
pub fn accepts_query_token(path: &str) -> bool {
    path == "/events" || path.starts_with("/events/")
}

fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| percent_decode(v))
    })
}

/// Decodes `%XX` and `+` of a query value (tokens are printable ASCII).
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn challenge(extra: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer realm=\"celeriac\"{extra}")).expect("ASCII header value")
}

/// The first layer of the app: refuses over-long URIs with the JSON error body,
/// then checks the bearer token's scope (when authentication is on).
#[derive(Clone, Default)]
pub struct Gate {
    auth: Option<Arc<Auth>>,
}

impl Gate {
    /// A gate enforcing `auth` (`None`: authentication off).
    pub fn new(auth: Option<Arc<Auth>>) -> Self {
        Self { auth }
    }
}

impl<E: Endpoint> Middleware<E> for Gate {
    type Output = GateEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        GateEndpoint {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The endpoint [`Gate`] wraps around the app.
pub struct GateEndpoint<E> {
    inner: E,
    auth: Option<Arc<Auth>>,
}

impl<E: Endpoint> Endpoint for GateEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_BYTES {
            let err = poem::Error::from_string(
                format!("request URI exceeds {MAX_URI_BYTES} bytes"),
                StatusCode::URI_TOO_LONG,
            );
            return Ok(crate::api::error::render(err).await);
        }
        if let Some(auth) = &self.auth
            && let Some(needed) = required_scope(req.method(), req.uri().path(), auth.cfg.metrics_require_auth)
        {
            let query = accepts_query_token(req.uri().path())
                .then(|| query_token(&req))
                .flatten();
            let token = bearer_token(&req).or(query.as_deref());
            let granted = token.and_then(|t| auth.scope_of(t));
            match granted {
                None => {
                    let (message, extra) = match token {
                        None => ("a bearer token is required (Authorization: Bearer <token>)", ""),
                        Some(_) => ("the bearer token is not valid", ", error=\"invalid_token\""),
                    };
                    let mut resp = ApiError::unauthorized(message).into_response();
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, challenge(extra));
                    return Ok(resp);
                }
                Some(scope) if scope < needed => {
                    let mut resp = ApiError::forbidden(format!(
                        "this operation needs the {needed} scope; the token has {scope}"
                    ))
                    .into_response();
                    let extra = format!(", error=\"insufficient_scope\", scope=\"{needed}\"");
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, challenge(&extra));
                    return Ok(resp);
                }
                Some(_) => {}
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Declares the `bearer` security scheme on an operation in the OpenAPI spec.
/// It never rejects a request: [`Gate`] enforces the scopes for every route.
/// Each operation states its scope in its description (`Scope: …`).
#[derive(Debug)]
pub struct BearerAuth;

impl<'a> ApiExtractor<'a> for BearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            "bearer",
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "A token from CELERIAC_API_TOKENS / CELERIAC_API_TOKENS_FILE. Scopes: read (every GET) < \
                     write (enqueue, workflows, cancel, retry, pause/resume of a task) < admin (everything). \
                     Each operation names the scope it needs.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["bearer"]
    }

    async fn from_request(
        _request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_method_and_path() {
        use Scope::*;
        let cases = [
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("GET", "/docs", None),
            ("GET", "/docs/index.js", None),
            ("GET", "/openapi.json", None),
            ("GET", "/metrics", None),
            ("GET", "/tasks/abc", Some(Read)),
            ("HEAD", "/queues", Some(Read)),
            ("GET", "/events", Some(Read)),
            ("GET", "/anything/new", Some(Read)),
            ("POST", "/tasks", Some(Write)),
            ("POST", "/workflows", Some(Write)),
            (
                "POST",
                "/tasks/6ed2c18e-0000-0000-0000-000000000000/cancel",
                Some(Write),
            ),
            ("POST", "/tasks/x/retry", Some(Write)),
            ("POST", "/tasks/x/pause", Some(Write)),
            ("POST", "/tasks/x/resume", Some(Write)),
            ("DELETE", "/tasks/x", Some(Admin)),
            ("POST", "/queues/default/pause", Some(Admin)),
            ("POST", "/queues/default/purge", Some(Admin)),
            ("POST", "/schedules", Some(Admin)),
            ("POST", "/healthz", Some(Admin)),
            ("POST", "/tasks/", Some(Admin)),
            ("POST", "/tasks/x/../../queues/q/purge", Some(Admin)),
            ("POST", "/tasks/a%2Fb/cancel", Some(Admin)),
            ("POST", "/tasks/x/cancel/", Some(Admin)),
            ("PUT", "/tasks", Some(Admin)),
        ];
        for (m, p, want) in cases {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(required_scope(&m, p, false), want, "{m} {p}");
        }
        assert_eq!(required_scope(&Method::GET, "/metrics", true), Some(Read));
    }

    #[test]
    fn query_tokens_are_only_for_the_event_stream() {
        assert!(accepts_query_token("/events"));
        assert!(accepts_query_token("/events/tasks"));
        assert!(!accepts_query_token("/tasks"));
        assert!(!accepts_query_token("/eventsx"));
        assert_eq!(percent_decode("a%2Bb+c%zz"), "a+b c%zz");
    }
}
