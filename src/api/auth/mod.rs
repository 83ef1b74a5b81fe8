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

use std::{fmt, path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;

mod gate;
mod tokens;

pub use gate::{BearerAuth, Gate, GateEndpoint, accepts_query_token, required_scope};
pub use tokens::TokenTable;

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
