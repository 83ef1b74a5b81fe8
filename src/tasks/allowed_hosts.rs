//! Where outbound HTTP may go: the allowed hosts of the `http` task
//! (`CELERIAC_HTTP_ALLOWED_HOSTS`) and of completion callbacks
//! (`CELERIAC_CALLBACK_ALLOWED_HOSTS`). Nothing is allowed until an operator lists
//! it, since a task queue that fetches any URL it is handed is an open proxy into
//! the private network.

use std::fmt;

use reqwest::Url;

/// An allowed-hosts entry that is not `host`, `host:port` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidHost(pub String);

/// One allowed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AllowedHost {
    Any,
    Host { host: String, port: Option<u16> },
}

/// Allowed destinations, and the setting that lists them (named in refusals).
#[derive(Clone, Debug)]
pub(crate) struct AllowedHosts {
    hosts: Vec<AllowedHost>,
    setting: &'static str,
}

impl AllowedHosts {
    /// Reads `host`, `host:port` and `*` entries of `setting`.
    pub(crate) fn parse(entries: &[String], setting: &'static str) -> Result<Self, InvalidHost> {
        let mut hosts = Vec::new();
        for raw in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let invalid = || InvalidHost(raw.to_owned());
            if raw == "*" {
                hosts.push(AllowedHost::Any);
                continue;
            }
            // `host:port` unless the colon belongs to an unbracketed IPv6 address.
            let (host, port) = match raw.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    (h, Some(p.parse::<u16>().map_err(|_| invalid())?))
                }
                _ => (raw, None),
            };
            let host = host.to_ascii_lowercase();
            // Url prints IPv6 hosts in brackets; store them the same way.
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            if host.is_empty() || host.contains('/') || host.contains('*') {
                return Err(invalid());
            }
            hosts.push(AllowedHost::Host { host, port });
        }
        Ok(Self { hosts, setting })
    }

    /// True when `url`'s host (and port) is allowed.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.hosts.iter().any(|a| match a {
            AllowedHost::Any => true,
            AllowedHost::Host { host: h, port: p } => h.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port),
        })
    }

    /// The error for a `url` that is not allowed.
    pub(crate) fn refusal(&self, url: &Url) -> HostNotAllowed {
        HostNotAllowed {
            host: format!(
                "{}:{}",
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            ),
            none_allowed: self.hosts.is_empty(),
            setting: self.setting,
        }
    }
}

/// A destination outside the allowed hosts (also raised from the redirect policy).
#[derive(Debug)]
pub(crate) struct HostNotAllowed {
    host: String,
    none_allowed: bool,
    setting: &'static str,
}

impl fmt::Display for HostNotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.none_allowed {
            write!(
                f,
                "host {} is not allowed: no destination is allowed until {} lists it (host, host:port or *)",
                self.host, self.setting
            )
        } else {
            write!(
                f,
                "host {} is not allowed: add it to {} (host, host:port or *)",
                self.host, self.setting
            )
        }
    }
}

impl std::error::Error for HostNotAllowed {}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTING: &str = "CELERIAC_TEST_ALLOWED_HOSTS";

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>(), SETTING).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn no_host_is_allowed_by_default_and_the_error_names_the_setting() {
        let none = hosts(&[]);
        let u = url("https://example.com/x");
        assert!(!none.allows(&u));
        let msg = none.refusal(&u).to_string();
        assert!(msg.contains(SETTING) && msg.contains("example.com:443"), "{msg}");
    }

    #[test]
    fn hosts_match_by_name_and_optionally_port() {
        let h = hosts(&["api.example.com", "127.0.0.1:8080", "[::1]:9000", "::2"]);
        assert!(h.allows(&url("https://API.example.com/x")));
        assert!(h.allows(&url("http://api.example.com:81/x")));
        assert!(h.allows(&url("http://127.0.0.1:8080/")));
        assert!(!h.allows(&url("http://127.0.0.1:8081/")));
        assert!(!h.allows(&url("http://127.0.0.1/")));
        assert!(h.allows(&url("http://[::1]:9000/")));
        assert!(!h.allows(&url("http://[::1]:9001/")));
        assert!(h.allows(&url("http://[::2]:1/")));
        assert!(!h.allows(&url("http://evil.example.com/")));
        assert!(hosts(&["*"]).allows(&url("http://anything:1/")));
    }

    #[test]
    fn bad_allowed_host_entries_are_refused() {
        for bad in ["host:port", "*.example.com", "http://x", "host:99999"] {
            assert!(
                AllowedHosts::parse(&[bad.to_owned()], SETTING).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
