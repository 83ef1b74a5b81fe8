//! The token table: `<token>:<scope>` entries from the setting and the file,
//! kept as SHA-256 digests and looked up in constant time.

use std::{fmt, path::Path};

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{AuthConfig, AuthError, MIN_TOKEN_LEN, Scope};

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
        let auth = super::super::Auth::load(&c).unwrap().unwrap();
        assert!(!format!("{auth:?}").contains("secret-secret"));
    }
}
