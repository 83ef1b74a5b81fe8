//! API authentication: bearer tokens with scopes `read` < `write` < `admin`.
//!
//! Tokens come from `CELERIAC_API_TOKENS` (`<token>:<scope>` entries,
//! comma-separated) and/or `CELERIAC_API_TOKENS_FILE` (one entry per line,
//! `#` comments), and the table is rebuilt on SIGHUP; a reload that fails keeps
//! the old table and logs why (naming the entry, never the token). Only the
//! SHA-256 digest of each token is kept; a presented token is hashed and
//! compared with every digest in constant time, so neither the position nor
//! the length of a match leaks through timing.
//!
//! One middleware ([`Gate`]) decides the scope from the method and the path
//! alone ([`required_scope`]), so routes added later are covered without a
//! line here: every GET needs `read`; a small table names the `write`
//! operations; everything else needs `admin`. Open: `/healthz`, `/readyz`,
//! `/docs`, `/openapi.json`, and `/metrics` unless configured otherwise.
//! `?access_token=` is accepted only on `/events` (browsers' `EventSource`
//! cannot set headers). The OpenAPI spec declares the `bearer` scheme through
//! [`BearerAuth`], an extractor that documents and never rejects: enforcement
//! stays in the one middleware, so the spec cannot disagree with it by accident.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use poem::{
    Endpoint, IntoResponse, Middleware, Request, RequestBody, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest request URI answered by the API itself (with the JSON error body).
/// hyper answers a bare 414 above 65,534 bytes before the request reaches the
/// application; below that, this limit gives the JSON body.
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// What a token allows; each scope includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every GET.
    Read = 1,
    /// Enqueue, workflows, cancel, retry, pause/resume of a task.
    Write = 2,
    /// Everything: queue pause/resume/purge, delete, dead letter, schedules.
    Admin = 3,
}

impl Scope {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::Read),
            2 => Some(Self::Write),
            3 => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::config::AuthConfig;

/// Why the token table could not be built. No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Authentication is on and no token is configured.
    #[error(
        "no API token configured: set CELERIAC_API_TOKENS (<token>:<scope>,...) or CELERIAC_API_TOKENS_FILE, \
         or CELERIAC_AUTH=off to run without authentication"
    )]
    NoTokens,
    /// An entry is malformed.
    #[error("{origin}: {reason}")]
    BadEntry {
        /// Where the entry is (`CELERIAC_API_TOKENS entry 2`, `tokens.txt line 7`).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokens file could not be read.
    #[error("cannot read tokens file {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The tokens in force: SHA-256 digests and their scopes. `Debug` shows the count only.
#[derive(Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Scope)>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenTable({} tokens)", self.entries.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenTable {
    /// Builds the table from the inline entries and the file of `cfg`.
    pub fn load(cfg: &AuthConfig) -> Result<Self, AuthError> {
        let mut table = Self::default();
        if let Some(inline) = &cfg.tokens {
            for (i, entry) in inline.split(',').enumerate() {
                table.add(entry, || format!("CELERIAC_API_TOKENS entry {}", i + 1))?;
            }
        }
        if let Some(path) = &cfg.tokens_file {
            table.add_file(path)?;
        }
        if table.entries.is_empty() {
            return Err(AuthError::NoTokens);
        }
        Ok(table)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::File {
            path: path.to_owned(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            self.add(line, || format!("{} line {}", path.display(), i + 1))?;
        }
        Ok(())
    }

    /// Adds one `<token>:<scope>` entry; blank entries are skipped.
    fn add(&mut self, entry: &str, origin: impl Fn() -> String) -> Result<(), AuthError> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Ok(());
        }
        let bad = |reason: String| AuthError::BadEntry {
            origin: origin(),
            reason,
        };
        // The scope follows the last colon, so a token may contain colons.
        let (token, scope) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("expected <token>:<scope>".into()))?;
        let scope = Scope::parse(scope.trim()).ok_or_else(|| bad("scope must be read, write or admin".into()))?;
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(bad(format!("token shorter than {MIN_TOKEN_LEN} characters")));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("token must be printable ASCII without spaces".into()));
        }
        let d = digest(token);
        if self.entries.iter().any(|(e, _)| *e == d) {
            return Err(bad("token listed twice".into()));
        }
        self.entries.push((d, scope));
        Ok(())
    }

    /// The scope of `token`, if it is known. Hashes it and compares with every
    /// entry in constant time (no early exit).
    pub fn lookup(&self, token: &str) -> Option<Scope> {
        let d = digest(token);
        let mut found = 0u8;
        for (e, scope) in &self.entries {
            found = u8::conditional_select(&found, &(*scope as u8), e.ct_eq(&d));
        }
        Scope::from_u8(found)
    }

    /// How many tokens are in force.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no token is in force.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The authentication state of one API process: the settings and the table
/// in force, swapped whole on reload.
pub struct Auth {
    cfg: AuthConfig,
    table: ArcSwap<TokenTable>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("cfg", &self.cfg)
            .field("table", &**self.table.load())
            .finish()
    }
}

impl Auth {
    /// Loads the tokens; `None` when authentication is off (after warning).
    /// Fails, naming the setting, when it is on and no valid token is given.
    pub fn load(cfg: &AuthConfig) -> Result<Option<Arc<Self>>, AuthError> {
        if !cfg.enabled {
            tracing::warn!("CELERIAC_AUTH=off: the API accepts every request without a token");
            return Ok(None);
        }
        let table = TokenTable::load(cfg)?;
        tracing::info!(tokens = table.len(), "API authentication on");
        Ok(Some(Arc::new(Self {
            cfg: cfg.clone(),
            table: ArcSwap::from_pointee(table),
        })))
    }

    /// Rebuilds the table from the same settings (the file is read again).
    /// On error the old table stays in force and the error is returned.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let table = TokenTable::load(&self.cfg)?;
        let n = table.len();
        self.table.store(Arc::new(table));
        Ok(n)
    }

    /// The scope `token` grants, if any.
    pub fn scope_of(&self, token: &str) -> Option<Scope> {
        self.table.load().lookup(token)
    }

    /// Reloads the table on every SIGHUP, for the life of the process.
    /// Must be called inside a tokio runtime.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error.message = %e, "cannot listen for SIGHUP: tokens will not reload");
                    return;
                }
            };
            let auth = Arc::downgrade(self);
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let Some(auth) = auth.upgrade() else { return };
                    match auth.reload() {
                        Ok(n) => tracing::info!(tokens = n, "SIGHUP: API tokens reloaded"),
                        Err(e) => tracing::error!(
                            error.cause_chain = ?e, error.message = %e,
                            "SIGHUP: API tokens not reloaded, the previous tokens stay in force"
                        ),
                    }
                }
            });
        }
    }
}

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
            return Ok(super::error::render(err).await);
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

    fn cfg(tokens: &str) -> AuthConfig {
        AuthConfig {
            tokens: Some(tokens.to_owned()),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn tokens_map_to_their_scopes() {
        let t = TokenTable::load(&cfg(
            "reader-0123456789:read, writer-0123456789:write,adm:in-0123456789:admin",
        ))
        .unwrap();
        assert_eq!(t.lookup("reader-0123456789"), Some(Scope::Read));
        assert_eq!(t.lookup("writer-0123456789"), Some(Scope::Write));
        assert_eq!(t.lookup("adm:in-0123456789"), Some(Scope::Admin));
        assert_eq!(t.lookup("reader-012345678"), None);
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_the_token() {
        for (entries, why) in [
            ("short-token:read", "shorter"),
            ("abcdefghijklmnopq", "expected"),
            ("abcdefghijklmnopq:root", "scope"),
            ("abcdefghijklmnopq:read,abcdefghijklmnopq:admin", "twice"),
            ("abcdefgh ijklmnopq:read", "printable"),
        ] {
            let e = TokenTable::load(&cfg(entries)).unwrap_err().to_string();
            assert!(e.contains(why), "{entries}: {e}");
            assert!(!e.contains("abcdefgh") && !e.contains("short-token"), "{e}");
        }
        assert!(matches!(TokenTable::load(&cfg(" , ")), Err(AuthError::NoTokens)));
        assert!(matches!(
            TokenTable::load(&AuthConfig::default()),
            Err(AuthError::NoTokens)
        ));
    }

    #[test]
    fn debug_output_redacts_tokens() {
        let c = cfg("secret-secret-secret:admin");
        assert!(!format!("{c:?}").contains("secret-secret"));
        let auth = Auth::load(&c).unwrap().unwrap();
        assert!(!format!("{auth:?}").contains("secret-secret"));
    }

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
