//! Proof Key for Code Exchange (RFC 7636), `S256` only (OAuth 2.1 section
//! 4.1.1, RFC 9700 section 2.1.1: `plain` offers no protection against a
//! leaked authorization request).

use crate::crypto;

/// A checked `code_challenge` for `S256`: base64url of a SHA-256 digest,
/// which is always 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

/// Why an authorization request's PKCE parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    Missing,
    MethodNotS256,
    Malformed,
}

impl ChallengeError {
    pub fn description(self) -> &'static str {
        match self {
            ChallengeError::Missing => "code_challenge is required (PKCE with S256)",
            ChallengeError::MethodNotS256 => "code_challenge_method must be S256",
            ChallengeError::Malformed => "code_challenge must be 43 base64url characters (S256)",
        }
    }
}

fn is_base64url(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl CodeChallenge {
    /// Checks the authorization request's `code_challenge` and
    /// `code_challenge_method`. An absent method means `plain` (RFC 7636
    /// section 4.3), which is refused.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, ChallengeError> {
        let challenge = challenge.ok_or(ChallengeError::Missing)?;
        if method != Some("S256") {
            return Err(ChallengeError::MethodNotS256);
        }
        if challenge.len() != 43 || !challenge.chars().all(is_base64url) {
            return Err(ChallengeError::Malformed);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// A challenge read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` (the token request's `code_verifier`) matches.
    /// A verifier must be 43-128 characters of `[A-Za-z0-9-._~]`.
    pub fn verify(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
        if !well_formed {
            return false;
        }
        let computed = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
        crypto::ct_eq(computed.as_bytes(), self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_example_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.verify(VERIFIER));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), Some("plain")),
            Err(ChallengeError::MethodNotS256)
        );
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), None),
            Err(ChallengeError::MethodNotS256)
        );
        assert_eq!(
            CodeChallenge::parse(None, Some("S256")),
            Err(ChallengeError::Missing)
        );
    }

    #[test]
    fn malformed_challenges_are_refused() {
        for bad in [
            "short",
            &"a".repeat(44),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw=cM",
        ] {
            assert_eq!(
                CodeChallenge::parse(Some(bad), Some("S256")),
                Err(ChallengeError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_verifiers_never_verify() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(!c.verify("short"));
        assert!(!c.verify(&"a".repeat(129)));
        assert!(!c.verify(&format!("{VERIFIER} ")));
    }
}
