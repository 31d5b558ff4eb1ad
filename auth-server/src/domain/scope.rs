use std::collections::BTreeSet;
use std::fmt;

/// A scope this system knows (`INTERFACE.md`, "Roles and scopes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// OpenID Connect: an ID token and `/userinfo`.
    OpenId,
    Profile,
    NotesRead,
    NotesWrite,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::OpenId,
        Scope::Profile,
        Scope::NotesRead,
        Scope::NotesWrite,
        Scope::Admin,
    ];

    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "openid" => Some(Scope::OpenId),
            "profile" => Some(Scope::Profile),
            "notes:read" => Some(Scope::NotesRead),
            "notes:write" => Some(Scope::NotesWrite),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OpenId => "openid",
            Scope::Profile => "profile",
            Scope::NotesRead => "notes:read",
            Scope::NotesWrite => "notes:write",
            Scope::Admin => "admin",
        }
    }

    /// What the scope allows, in words, for the consent page.
    pub fn description(self) -> &'static str {
        match self {
            Scope::OpenId => "Sign you in with your account here",
            Scope::Profile => "See your username and roles",
            Scope::NotesRead => "Read your notes",
            Scope::NotesWrite => "Create, change and delete your notes",
            Scope::Admin => "Use the administration API (note counts of all users)",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of known scopes, printed space-separated in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

impl ScopeSet {
    pub fn all() -> Self {
        Self(Scope::ALL.into_iter().collect())
    }

    /// Parses a requested `scope` parameter. Syntax errors are refused;
    /// well-formed tokens this server does not know are dropped, since a
    /// request is narrowed to what can be granted rather than refused.
    pub fn parse_request(input: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in input.split(' ') {
            if token.is_empty() {
                continue;
            }
            if !token.chars().all(is_scope_token_char) {
                return Err("scope contains characters RFC 6749 does not allow".into());
            }
            if let Some(scope) = Scope::parse(token) {
                set.insert(scope);
            }
        }
        Ok(Self(set))
    }

    /// Parses configured scopes (registration, stored rows): every name must
    /// be known.
    pub fn parse_known<S: AsRef<str>>(inputs: &[S]) -> Result<Self, String> {
        inputs
            .iter()
            .map(|s| {
                Scope::parse(s.as_ref()).ok_or_else(|| {
                    format!(
                        "unknown scope {:?} (expected one of profile, notes:read, notes:write, admin)",
                        s.as_ref()
                    )
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// This set without `scope`.
    pub fn without(&self, scope: Scope) -> ScopeSet {
        Self(self.0.iter().copied().filter(|s| *s != scope).collect())
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.intersection(&other.0).copied().collect())
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).copied().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_scope_drops_unknown_tokens_and_refuses_bad_syntax() {
        let set = ScopeSet::parse_request("notes:read  unknown profile").unwrap();
        assert_eq!(set.to_string(), "profile notes:read");
        assert!(ScopeSet::parse_request("notes\"read").is_err());
        assert!(ScopeSet::parse_request("a\\b").is_err());
        assert!(ScopeSet::parse_request("").unwrap().is_empty());
    }

    #[test]
    fn configured_scopes_must_be_known() {
        assert!(ScopeSet::parse_known(&["profile", "email"]).is_err());
        assert_eq!(
            ScopeSet::parse_known(&["admin", "profile"]).unwrap().to_string(),
            "profile admin"
        );
    }
}
