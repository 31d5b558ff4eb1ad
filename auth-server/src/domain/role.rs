use std::collections::BTreeSet;
use std::fmt;

use super::scope::{Scope, ScopeSet};

/// A user's role; what each may receive is fixed by `INTERFACE.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn parse(input: &str) -> Result<Self, String> {
        match input {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (expected user or admin)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The scopes a holder of this role may be granted.
    pub fn permits(self, scope: Scope) -> bool {
        match scope {
            Scope::OpenId | Scope::Profile | Scope::NotesRead | Scope::NotesWrite => true,
            Scope::Admin => self == Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    pub fn parse<S: AsRef<str>>(inputs: &[S]) -> Result<Self, String> {
        let set = inputs
            .iter()
            .map(|r| Role::parse(r.as_ref()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.is_empty() {
            return Err("at least one role is required".into());
        }
        Ok(Self(set))
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Whether any of the roles permits `scope`.
    pub fn permit(&self, scope: Scope) -> bool {
        self.0.iter().any(|r| r.permits(scope))
    }

    /// Keeps only the scopes these roles permit.
    pub fn permitted(&self, scopes: &ScopeSet) -> ScopeSet {
        scopes.iter().filter(|s| self.permit(*s)).collect()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_may_receive_the_admin_scope() {
        assert!(!Role::User.permits(Scope::Admin));
        assert!(Role::Admin.permits(Scope::Admin));
        assert!(Role::User.permits(Scope::NotesWrite));
    }

    #[test]
    fn unknown_role_is_refused() {
        assert!(Roles::parse(&["user", "root"]).is_err());
        assert!(Roles::parse::<&str>(&[]).is_err());
        assert_eq!(
            Roles::parse(&["admin", "user", "user"]).unwrap().to_strings(),
            ["user", "admin"]
        );
    }

    #[test]
    fn scope_is_narrowed_by_role() {
        let roles = Roles::parse(&["user"]).unwrap();
        assert_eq!(
            roles.permitted(&ScopeSet::all()).to_string(),
            "openid profile notes:read notes:write"
        );
        let admin = Roles::parse(&["admin"]).unwrap();
        assert_eq!(admin.permitted(&ScopeSet::all()), ScopeSet::all());
    }
}
