//! What a token may carry (`INTERFACE.md`, "Roles and scopes"): the
//! intersection of what was requested, what the client is allowed and what
//! the user's roles permit. A request is narrowed, not refused; only an
//! empty result is `invalid_scope`.

use super::OAuthError;
use crate::domain::{Roles, Scope, ScopeSet};

/// `requested` is the parsed `scope` parameter, `None` when absent (then the
/// client's allowed scopes are the default, RFC 6749 section 3.3, except
/// `openid`: an OpenID Connect request names it, OIDC Core section
/// 3.1.2.1). `roles` is `None` when there is no user (yet).
pub fn grant(
    requested: Option<&ScopeSet>,
    client_allowed: &ScopeSet,
    roles: Option<&Roles>,
) -> Result<ScopeSet, OAuthError> {
    let default = client_allowed.without(Scope::OpenId);
    let wanted = requested.unwrap_or(&default);
    let mut granted = wanted.intersection(client_allowed);
    if let Some(roles) = roles {
        granted = roles.permitted(&granted);
    }
    if granted.is_empty() {
        return Err(OAuthError::InvalidScope(
            "none of the requested scopes can be granted",
        ));
    }
    Ok(granted)
}

/// Parses the `scope` parameter of a request.
pub fn parse_requested(value: Option<&str>) -> Result<Option<ScopeSet>, OAuthError> {
    value
        .map(|v| ScopeSet::parse_request(v).map_err(|_| OAuthError::InvalidScope("scope is malformed")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse_request(s).unwrap()
    }

    #[test]
    fn user_asking_for_admin_is_narrowed_not_refused() {
        let roles = Roles::parse(&["user"]).unwrap();
        let granted = grant(Some(&set("notes:read admin")), &ScopeSet::all(), Some(&roles)).unwrap();
        assert_eq!(granted.to_string(), "notes:read");
    }

    #[test]
    fn nothing_grantable_is_invalid_scope() {
        let roles = Roles::parse(&["user"]).unwrap();
        let e = grant(Some(&set("admin")), &ScopeSet::all(), Some(&roles)).unwrap_err();
        assert_eq!(e.code(), "invalid_scope");
    }

    #[test]
    fn absent_scope_defaults_to_what_the_client_may_have() {
        let roles = Roles::parse(&["user"]).unwrap();
        let granted = grant(None, &set("profile notes:read"), Some(&roles)).unwrap();
        assert_eq!(granted.to_string(), "profile notes:read");
    }

    #[test]
    fn client_allowance_limits_the_grant() {
        let admin = Roles::parse(&["admin"]).unwrap();
        let granted = grant(Some(&set("profile admin")), &set("profile"), Some(&admin)).unwrap();
        assert_eq!(granted.to_string(), "profile");
    }

    #[test]
    fn machine_tokens_ignore_roles() {
        let granted = grant(Some(&set("admin")), &ScopeSet::all(), None).unwrap();
        assert_eq!(granted.to_string(), "admin");
    }
}
