//! Routes: which queue a task goes to when its request names none.
//!
//! `CELERIAC_ROUTES` lists `glob=queue` pairs, e.g.
//! `transcode*=encoding,xapi.*=xapi,report=reports`. The first glob that matches
//! the task's name wins; a name no glob matches goes to `default`. Globs know
//! `*` (any run of characters, `.` included) and `?` (one character).

use std::{fmt, str::FromStr};

use super::task::DEFAULT_QUEUE;

/// Why a routes setting was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// An entry is not `glob=queue`.
    #[error("route {entry:?} is not <task glob>=<queue>")]
    Malformed {
        /// The offending entry.
        entry: String,
    },
    /// An entry has an empty glob or queue.
    #[error("route {entry:?} has an empty task glob or queue")]
    Empty {
        /// The offending entry.
        entry: String,
    },
    /// The queue is not a valid queue name.
    #[error("route {entry:?} names an invalid queue: {reason}")]
    InvalidQueue {
        /// The offending entry.
        entry: String,
        /// Why the queue name is refused.
        reason: String,
    },
}

/// One `glob=queue` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Glob on task names (`*`, `?`).
    pub pattern: String,
    /// Queue of the tasks it matches.
    pub queue: String,
}

impl Route {
    /// True when the route's glob matches `task_name`.
    pub fn matches(&self, task_name: &str) -> bool {
        glob_match(&self.pattern, task_name)
    }
}

/// Ordered routes; the first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Parses `glob=queue,glob=queue,…`; blank entries are skipped, so an
    /// empty setting means no routes.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        let mut routes = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, queue) = entry.split_once('=').ok_or_else(|| RouteError::Malformed {
                entry: entry.to_owned(),
            })?;
            let (pattern, queue) = (pattern.trim(), queue.trim());
            if pattern.is_empty() || queue.is_empty() {
                return Err(RouteError::Empty {
                    entry: entry.to_owned(),
                });
            }
            if !super::name::is_safe_name(queue, super::name::MAX_QUEUE_NAME) {
                return Err(RouteError::InvalidQueue {
                    entry: entry.to_owned(),
                    reason: format!("{queue:?} is not a valid queue name"),
                });
            }
            routes.push(Route {
                pattern: pattern.to_owned(),
                queue: queue.to_owned(),
            });
        }
        Ok(Self { routes })
    }

    /// The queue of the first route matching `task_name`, else `default`.
    pub fn queue_for(&self, task_name: &str) -> &str {
        self.routes
            .iter()
            .find(|r| r.matches(task_name))
            .map_or(DEFAULT_QUEUE, |r| r.queue.as_str())
    }

    /// The routes in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// True when there are no routes (every task goes to `default`).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl FromStr for Routes {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.routes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", r.pattern, r.queue)?;
        }
        Ok(())
    }
}

/// Matches `name` against a glob of `*` and `?`, by characters.
///
/// The classic greedy matcher: on a mismatch, go back to the last `*` and let it
/// swallow one more character. Linear in practice, never exponential.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Position of the last `*` in the pattern, and where in the name it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob_match("transcode*", "transcode"));
        assert!(glob_match("transcode*", "transcode.video"));
        assert!(glob_match("xapi.*", "xapi.send"));
        assert!(!glob_match("xapi.*", "xapi"));
        assert!(glob_match("report", "report"));
        assert!(!glob_match("report", "reports"));
        assert!(glob_match("r?port", "report"));
        assert!(!glob_match("r?port", "rport"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-b-y-d"));
        assert!(glob_match("*.encode", "video.mp4.encode"));
        assert!(glob_match("é?", "éé"));
    }

    #[test]
    fn the_first_matching_route_wins_and_unmatched_names_go_to_default() {
        let routes = Routes::parse("transcode*=encoding, xapi.*=xapi,report=reports,*.urgent=fast,*=catchall").unwrap();
        assert_eq!(routes.queue_for("transcode.audio"), "encoding");
        assert_eq!(routes.queue_for("xapi.statement"), "xapi");
        assert_eq!(routes.queue_for("report"), "reports");
        assert_eq!(routes.queue_for("transcode.urgent"), "encoding", "first match wins");
        assert_eq!(routes.queue_for("mail.urgent"), "fast");
        assert_eq!(routes.queue_for("other"), "catchall");
        let routes: Routes = "transcode*=encoding".parse().unwrap();
        assert_eq!(routes.queue_for("add"), DEFAULT_QUEUE);
        assert_eq!(routes.to_string(), "transcode*=encoding");
    }

    #[test]
    fn an_empty_setting_means_no_routes() {
        let routes = Routes::parse(" , ").unwrap();
        assert!(routes.is_empty());
        assert_eq!(routes.queue_for("anything"), "default");
    }

    #[test]
    fn malformed_routes_are_refused_with_the_entry() {
        assert_eq!(
            Routes::parse("a=b,transcode"),
            Err(RouteError::Malformed {
                entry: "transcode".to_owned()
            })
        );
        assert!(matches!(Routes::parse("=q"), Err(RouteError::Empty { .. })));
        assert!(matches!(Routes::parse("a="), Err(RouteError::Empty { .. })));
        let err = Routes::parse("a=my queue").unwrap_err();
        assert!(matches!(err, RouteError::InvalidQueue { .. }), "{err:?}");
        assert!(err.to_string().contains("a=my queue"), "{err}");
        assert!(Routes::parse("a={x}").is_err());
    }
}
