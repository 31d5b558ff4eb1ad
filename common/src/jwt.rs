//! The claim rules an access token must meet wherever it is checked: by the
//! resource server verifying offline (RFC 9068 section 4, RFC 8725 section
//! 3.8-3.9) and by the authorization server's introspection (RFC 7662
//! section 2.2). Signature and key selection stay with each caller; this
//! module sees only the decoded header and claims.
//!
//! Time claims (RFC 7519 sections 4.1.4-4.1.6) are whole Unix seconds and
//! allow a leeway for clock skew both ways: a token is expired once
//! `exp + leeway <= now`, not yet valid while `nbf - leeway > now`, and
//! issued in the future while `iat - leeway > now`. The arithmetic
//! saturates: a token can carry any number (found by the property tests).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A token's claims as decoded JSON.
pub type ClaimSet = Map<String, Value>;

/// Clock skew allowed on `exp`, `nbf` and `iat`: the resource server's
/// default and what introspection applies.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Why a token's claims are refused. [`ClaimError::as_str`] is the text for
/// logs and `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    WrongType,
    WrongIssuer,
    WrongAudience,
    NoExpiry,
    Expired,
    NoIssueTime,
    IssuedInFuture,
    LifetimeTooLong,
    NotYetValid,
}

impl ClaimError {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimError::WrongType => "token type is not at+jwt",
            ClaimError::WrongIssuer => "wrong issuer",
            ClaimError::WrongAudience => "wrong audience",
            ClaimError::NoExpiry => "token has no expiry",
            ClaimError::Expired => "token has expired",
            ClaimError::NoIssueTime => "token has no issue time",
            ClaimError::IssuedInFuture => "token was issued in the future",
            ClaimError::LifetimeTooLong => "token lifetime is too long",
            ClaimError::NotYetValid => "token is not valid yet",
        }
    }
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ClaimError {}

/// RFC 9068 section 4: the header's `typ` is `at+jwt` (or its full media
/// type), compared without regard to case.
pub fn check_type(typ: Option<&str>) -> Result<(), ClaimError> {
    let typ = typ.unwrap_or("");
    if typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt") {
        Ok(())
    } else {
        Err(ClaimError::WrongType)
    }
}

/// `iss` equals `issuer` exactly (RFC 8414 section 3.3 comparison).
pub fn check_issuer(claims: &ClaimSet, issuer: &str) -> Result<(), ClaimError> {
    if claims.get("iss").and_then(Value::as_str) == Some(issuer) {
        Ok(())
    } else {
        Err(ClaimError::WrongIssuer)
    }
}

/// The audiences a token names: `aud` as one string or a list of them.
pub fn audiences(claims: &ClaimSet) -> impl Iterator<Item = &str> {
    let list: &[Value] = match claims.get("aud") {
        Some(one @ Value::String(_)) => std::slice::from_ref(one),
        Some(Value::Array(many)) => many,
        _ => &[],
    };
    list.iter().filter_map(Value::as_str)
}

/// `aud` names `audience`.
pub fn check_audience(claims: &ClaimSet, audience: &str) -> Result<(), ClaimError> {
    if audiences(claims).any(|a| a == audience) {
        Ok(())
    } else {
        Err(ClaimError::WrongAudience)
    }
}

/// A numeric claim in whole seconds. A fraction is cut off and a number
/// beyond `i64` saturates, so no value can make the checks overflow.
pub fn number(claims: &ClaimSet, name: &str) -> Option<i64> {
    claims
        .get(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The first second (Unix time) at which a token expiring at `exp` counts
/// as expired.
pub fn expired_from(exp: i64, leeway: Duration) -> i64 {
    exp.saturating_add(seconds(leeway))
}

/// Whether a token expiring at `exp` has expired at `now` (Unix seconds).
pub fn expired(exp: i64, now: i64, leeway: Duration) -> bool {
    expired_from(exp, leeway) <= now
}

/// How the time claims are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    pub leeway: Duration,
    /// The longest `exp - iat` accepted, if any: a token minted with a
    /// stolen key cannot be given a far-off expiry.
    pub max_lifetime: Option<Duration>,
}

/// The checked `exp` and `iat` of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub exp: i64,
    pub iat: i64,
}

/// Checks `exp` and `iat` (both required) and `nbf` (if present) at `now`.
pub fn check_times(claims: &ClaimSet, now: DateTime<Utc>, rules: &TimeRules) -> Result<Validity, ClaimError> {
    let now = now.timestamp();
    let leeway = seconds(rules.leeway);
    let exp = number(claims, "exp").ok_or(ClaimError::NoExpiry)?;
    if expired(exp, now, rules.leeway) {
        return Err(ClaimError::Expired);
    }
    let iat = number(claims, "iat").ok_or(ClaimError::NoIssueTime)?;
    if iat.saturating_sub(leeway) > now {
        return Err(ClaimError::IssuedInFuture);
    }
    if let Some(max) = rules.max_lifetime
        && exp.saturating_sub(iat) > seconds(max)
    {
        return Err(ClaimError::LifetimeTooLong);
    }
    if let Some(nbf) = number(claims, "nbf")
        && nbf.saturating_sub(leeway) > now
    {
        return Err(ClaimError::NotYetValid);
    }
    Ok(Validity { exp, iat })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn claims(value: Value) -> ClaimSet {
        value.as_object().unwrap().clone()
    }

    const RULES: TimeRules = TimeRules {
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(3600)),
    };

    fn times(value: Value, now: i64) -> Result<Validity, ClaimError> {
        check_times(&claims(value), at(now), &RULES)
    }

    #[test]
    fn expiry_allows_exactly_the_leeway() {
        let token = json!({"iat": NOW - 600, "exp": NOW});
        assert_eq!(
            times(token.clone(), NOW + 29),
            Ok(Validity {
                exp: NOW,
                iat: NOW - 600
            })
        );
        assert_eq!(times(token, NOW + 30), Err(ClaimError::Expired));
    }

    #[test]
    fn nbf_and_iat_in_the_future_allow_exactly_the_leeway() {
        let exp = NOW + 600;
        assert!(times(json!({"iat": NOW, "exp": exp, "nbf": NOW + 30}), NOW).is_ok());
        assert_eq!(
            times(json!({"iat": NOW, "exp": exp, "nbf": NOW + 31}), NOW),
            Err(ClaimError::NotYetValid)
        );
        assert!(times(json!({"iat": NOW + 30, "exp": exp}), NOW).is_ok());
        assert_eq!(
            times(json!({"iat": NOW + 31, "exp": exp}), NOW),
            Err(ClaimError::IssuedInFuture)
        );
    }

    #[test]
    fn exp_and_iat_are_required_nbf_is_not() {
        assert_eq!(times(json!({"iat": NOW}), NOW), Err(ClaimError::NoExpiry));
        assert_eq!(times(json!({"exp": NOW + 60}), NOW), Err(ClaimError::NoIssueTime));
        assert_eq!(
            times(json!({"exp": "soon", "iat": NOW}), NOW),
            Err(ClaimError::NoExpiry)
        );
    }

    #[test]
    fn a_lifetime_over_the_maximum_is_refused_only_when_there_is_one() {
        let token = json!({"iat": NOW, "exp": NOW + 3601});
        assert_eq!(times(token.clone(), NOW), Err(ClaimError::LifetimeTooLong));
        let unbounded = TimeRules {
            max_lifetime: None,
            ..RULES
        };
        assert!(check_times(&claims(token), at(NOW), &unbounded).is_ok());
    }

    #[test]
    fn extreme_numbers_saturate_instead_of_overflowing() {
        assert_eq!(
            times(json!({"iat": i64::MAX, "exp": i64::MAX}), NOW),
            Err(ClaimError::IssuedInFuture)
        );
        assert_eq!(
            times(json!({"iat": i64::MIN, "exp": i64::MIN}), NOW),
            Err(ClaimError::Expired)
        );
        assert_eq!(
            times(json!({"iat": NOW, "exp": u64::MAX}), NOW),
            Err(ClaimError::LifetimeTooLong)
        );
        assert_eq!(number(&claims(json!({"exp": 1e300})), "exp"), Some(i64::MAX));
        assert_eq!(number(&claims(json!({"exp": 12.9})), "exp"), Some(12));
    }

    #[test]
    fn typ_must_be_at_jwt_in_either_spelling() {
        assert!(check_type(Some("at+jwt")).is_ok());
        assert!(check_type(Some("AT+JWT")).is_ok());
        assert!(check_type(Some("application/at+jwt")).is_ok());
        assert_eq!(check_type(Some("JWT")), Err(ClaimError::WrongType));
        assert_eq!(check_type(None), Err(ClaimError::WrongType));
    }

    #[test]
    fn issuer_is_compared_exactly() {
        let c = claims(json!({"iss": "https://auth.example.com"}));
        assert!(check_issuer(&c, "https://auth.example.com").is_ok());
        assert_eq!(
            check_issuer(&c, "https://auth.example.com/"),
            Err(ClaimError::WrongIssuer)
        );
        assert_eq!(check_issuer(&ClaimSet::new(), "x"), Err(ClaimError::WrongIssuer));
    }

    #[test]
    fn the_audience_may_be_one_string_or_a_list() {
        let one = claims(json!({"aud": "a"}));
        let many = claims(json!({"aud": ["x", 7, "a"]}));
        assert_eq!(audiences(&one).collect::<Vec<_>>(), ["a"]);
        assert_eq!(audiences(&many).collect::<Vec<_>>(), ["x", "a"]);
        assert!(check_audience(&many, "a").is_ok());
        assert_eq!(check_audience(&many, "y"), Err(ClaimError::WrongAudience));
        assert_eq!(
            check_audience(&claims(json!({"aud": 1})), "1"),
            Err(ClaimError::WrongAudience)
        );
    }
}
