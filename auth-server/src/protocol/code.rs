//! The rules of the `authorization_code` grant at the token endpoint
//! (OAuth 2.1 section 4.1.3, RFC 7636 section 4.6, RFC 9700 section 2.1),
//! as pure decisions beside [`super::refresh::judge`]. The oxide-auth
//! wrapper in `engine/exchange.rs` only adapts: it consumes the code, asks
//! [`judge`], and acts on the verdict.
//!
//! In order, a consumed code is refused when it is unknown, expired or
//! replayed (a replay also revokes the tokens issued from it), issued to
//! another client, presented with another `redirect_uri` than the
//! authorization request's (exact string match; omitted only if it was
//! omitted there), or presented without the PKCE verifier that matches its
//! `S256` challenge.

use uuid::Uuid;

use super::OAuthError;
use super::grants::{Consumed, StoredCode};
use super::pkce::CodeChallenge;
use crate::domain::ScopeSet;
use crate::model::User;

/// What the token request presents alongside the code.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// What to do with a consumed code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Issue tokens for this code.
    Redeem(StoredCode),
    /// The code was used before: revoke the family issued from it, then
    /// refuse with `invalid_grant`.
    RevokeAndRefuse { family_id: Uuid, error: OAuthError },
    /// Refuse; nothing else changes (the code itself is already spent).
    Refuse(OAuthError),
}

/// Decides what a consumed code gets.
pub fn judge(consumed: Consumed, presented: Presented<'_>) -> Verdict {
    let stored = match consumed {
        Consumed::Fresh(stored) => stored,
        Consumed::Unknown => return refuse("the authorization code is invalid"),
        Consumed::Expired => return refuse("the authorization code has expired"),
        Consumed::Replayed { family_id } => {
            return Verdict::RevokeAndRefuse {
                family_id,
                error: OAuthError::InvalidGrant("the authorization code was already used"),
            };
        }
    };
    if stored.client_id != presented.client_id {
        return refuse("the authorization code was issued to another client");
    }
    let redirect_matches = match presented.redirect_uri {
        Some(given) => given == stored.redirect_uri,
        None => !stored.redirect_uri_given,
    };
    if !redirect_matches {
        return refuse("redirect_uri does not match the authorization request");
    }
    if let Some(refusal) = pkce_refusal(&stored.code_challenge, presented.code_verifier) {
        return refuse(refusal);
    }
    Verdict::Redeem(stored)
}

fn refuse(description: &'static str) -> Verdict {
    Verdict::Refuse(OAuthError::InvalidGrant(description))
}

/// Why the verifier does not satisfy the stored challenge, if it does not.
fn pkce_refusal(challenge: &str, verifier: Option<&str>) -> Option<&'static str> {
    match (challenge.is_empty(), verifier) {
        (false, Some(verifier)) => {
            if CodeChallenge::from_stored(challenge.to_owned()).verify(verifier) {
                None
            } else {
                Some("code_verifier does not match the code_challenge")
            }
        }
        (false, None) => Some("code_verifier is required"),
        // A verifier for a code issued without a challenge is a PKCE
        // downgrade attempt (RFC 9700 section 2.1.1).
        (true, Some(_)) => Some("code_verifier given but the authorization request had no code_challenge"),
        (true, None) => Some("PKCE is required"),
    }
}

/// The scope the redeemed code may still carry: the user's roles may have
/// changed since the code was issued, and a deleted user gets nothing.
pub fn redeemable_scope(stored: &StoredCode, user: Option<&User>) -> Result<ScopeSet, OAuthError> {
    let user = user.ok_or(OAuthError::InvalidGrant("the user no longer exists"))?;
    let scope = user.roles.permitted(&stored.scope);
    if scope.is_empty() {
        return Err(OAuthError::InvalidGrant("the user may no longer have this scope"));
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::Roles;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn stored() -> StoredCode {
        StoredCode {
            client_id: "spa".into(),
            user_id: Uuid::nil(),
            session_hash: None,
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_given: true,
            scope: ScopeSet::parse_request("notes:read").unwrap(),
            code_challenge: CHALLENGE.into(),
            family_id: Uuid::nil(),
            expires_at: DateTime::<Utc>::MAX_UTC,
            sign_in: Default::default(),
        }
    }

    fn presented() -> Presented<'static> {
        Presented {
            client_id: "spa",
            redirect_uri: Some("https://app.example/cb"),
            code_verifier: Some(VERIFIER),
        }
    }

    fn refusal(verdict: Verdict) -> &'static str {
        match verdict {
            Verdict::Refuse(OAuthError::InvalidGrant(d)) => d,
            other => panic!("expected an invalid_grant refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_fresh_code_with_the_right_verifier_is_redeemed() {
        assert_eq!(
            judge(Consumed::Fresh(stored()), presented()),
            Verdict::Redeem(stored())
        );
    }

    #[test]
    fn unknown_and_expired_codes_are_invalid_grant() {
        assert_eq!(
            refusal(judge(Consumed::Unknown, presented())),
            "the authorization code is invalid"
        );
        assert_eq!(
            refusal(judge(Consumed::Expired, presented())),
            "the authorization code has expired"
        );
    }

    #[test]
    fn a_replayed_code_revokes_its_family() {
        let family_id = Uuid::from_u128(7);
        assert_eq!(
            judge(Consumed::Replayed { family_id }, presented()),
            Verdict::RevokeAndRefuse {
                family_id,
                error: OAuthError::InvalidGrant("the authorization code was already used"),
            }
        );
    }

    #[test]
    fn another_clients_code_is_refused() {
        let other = Presented {
            client_id: "intruder",
            ..presented()
        };
        assert_eq!(
            refusal(judge(Consumed::Fresh(stored()), other)),
            "the authorization code was issued to another client"
        );
    }

    #[test]
    fn redirect_uri_must_match_exactly() {
        for given in [
            Some("https://app.example/cb/"),
            Some("https://APP.example/cb"),
            None,
        ] {
            let request = Presented {
                redirect_uri: given,
                ..presented()
            };
            assert_eq!(
                refusal(judge(Consumed::Fresh(stored()), request)),
                "redirect_uri does not match the authorization request",
                "{given:?}"
            );
        }
    }

    #[test]
    fn an_omitted_redirect_uri_is_fine_when_the_request_omitted_it() {
        let code = StoredCode {
            redirect_uri_given: false,
            ..stored()
        };
        let request = Presented {
            redirect_uri: None,
            ..presented()
        };
        assert!(matches!(
            judge(Consumed::Fresh(code), request),
            Verdict::Redeem(_)
        ));
    }

    #[test]
    fn pkce_mismatch_missing_verifier_and_downgrade_are_refused() {
        let wrong = Presented {
            code_verifier: Some("x".repeat(43).leak()),
            ..presented()
        };
        assert_eq!(
            refusal(judge(Consumed::Fresh(stored()), wrong)),
            "code_verifier does not match the code_challenge"
        );
        let missing = Presented {
            code_verifier: None,
            ..presented()
        };
        assert_eq!(
            refusal(judge(Consumed::Fresh(stored()), missing)),
            "code_verifier is required"
        );
        let no_challenge = StoredCode {
            code_challenge: String::new(),
            ..stored()
        };
        assert_eq!(
            refusal(judge(Consumed::Fresh(no_challenge), presented())),
            "code_verifier given but the authorization request had no code_challenge"
        );
    }

    #[test]
    fn the_scope_narrows_to_the_users_current_roles() {
        let user = User {
            id: Uuid::nil(),
            username: "ada".into(),
            roles: Roles::parse(&["user"]).unwrap(),
        };
        let code = StoredCode {
            scope: ScopeSet::parse_request("notes:read admin").unwrap(),
            ..stored()
        };
        assert_eq!(redeemable_scope(&code, Some(&user)).unwrap(), stored().scope);
        let admin_only = StoredCode {
            scope: ScopeSet::parse_request("admin").unwrap(),
            ..stored()
        };
        assert_eq!(
            redeemable_scope(&admin_only, Some(&user)),
            Err(OAuthError::InvalidGrant("the user may no longer have this scope"))
        );
        assert_eq!(
            redeemable_scope(&stored(), None),
            Err(OAuthError::InvalidGrant("the user no longer exists"))
        );
    }
}
