//! Settings of the API's authentication and of the built-in tasks that reach
//! the network (`http`, completion callbacks).

use std::{fmt, path::PathBuf};

/// Default cap of a response body the `http` task keeps in its result (1 MiB).
pub const DEFAULT_HTTP_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default attempts per completion-callback delivery.
pub const DEFAULT_CALLBACK_MAX_ATTEMPTS: u32 = 10;

/// Authentication settings of the API.
#[derive(Clone)]
pub struct AuthConfig {
    /// `false` only when the operator set `CELERIAC_AUTH=off`: every route is
    /// open, and a warning is logged at startup.
    pub enabled: bool,
    /// Inline `<token>:<scope>` entries, comma-separated (secret: `Debug` redacts).
    pub tokens: Option<String>,
    /// A file of entries, one per line, `#` comments; re-read on SIGHUP.
    pub tokens_file: Option<PathBuf>,
    /// `/metrics` needs the `read` scope (it is open by default, for scrapers).
    pub metrics_require_auth: bool,
}

impl Default for AuthConfig {
    /// Secure by default: authentication on, no token yet (so the API refuses to start).
    fn default() -> Self {
        Self {
            enabled: true,
            tokens: None,
            tokens_file: None,
            metrics_require_auth: false,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("tokens", &self.tokens.as_ref().map(|_| "***"))
            .field("tokens_file", &self.tokens_file)
            .field("metrics_require_auth", &self.metrics_require_auth)
            .finish()
    }
}

/// Settings of the `http` task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTaskConfig {
    /// Allowed destinations: host names or `host:port` (`[v6]:port` for IPv6),
    /// or `*` for any. Empty (the default) allows none.
    pub allowed_hosts: Vec<String>,
    /// Longest response body kept in a result; longer ones are cut and flagged `truncated`.
    pub max_body_bytes: usize,
}

impl Default for HttpTaskConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_body_bytes: DEFAULT_HTTP_MAX_BODY_BYTES,
        }
    }
}

/// Settings of the `callback` task.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackTaskConfig {
    /// Allowed destinations: host names or `host:port`, or `*` for any. Empty
    /// (the default) allows none.
    pub allowed_hosts: Vec<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Signs each body (`X-Celeriac-Signature`).
    pub secret: Option<String>,
    /// Attempts per delivery (1 to `tasks::callback::MAX_ATTEMPTS_CEILING`).
    pub max_attempts: u32,
}

impl Default for CallbackTaskConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            token: None,
            secret: None,
            max_attempts: DEFAULT_CALLBACK_MAX_ATTEMPTS,
        }
    }
}

/// The token and secret are redacted.
impl fmt::Debug for CallbackTaskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("CallbackTaskConfig")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("token", &redacted(&self.token))
            .field("secret", &redacted(&self.secret))
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}
