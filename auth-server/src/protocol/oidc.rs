//! OpenID Connect Core 1.0 on top of the code flow, apart from HTTP and
//! SQL: the authorization request's OpenID parameters (section 3.1.2.1),
//! what the request needs of the user (`prompt`, `max_age`,
//! `id_token_hint`), the ID token (sections 2 and 3.1.3.6), the UserInfo
//! claims (section 5.3) and the Logout Token of Back-Channel Logout 1.0
//! (section 2.4).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{OAuthError, Params};
use crate::crypto;
use crate::domain::{Scope, ScopeSet};
use crate::model::User;

/// The algorithm of every token we sign (`keys::ALG`).
pub const SIGNING_ALG: &str = "ES256";

/// The longest `nonce` kept with a code (a client's random value needs far
/// less; the bound keeps rows and tokens small).
pub const NONCE_MAX_LEN: usize = 512;

/// The event a Logout Token carries (Back-Channel Logout 1.0 section 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a Logout Token is valid: long enough for a delivery, short
/// enough that a captured one is soon useless.
pub const LOGOUT_TOKEN_TTL_SECONDS: i64 = 120;

/// The `prompt` values (section 3.1.2.1) this server supports.
pub const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "select_account"];

/// The parsed `prompt` parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Show nothing: answer with an error where a page would be needed.
    pub none: bool,
    /// Sign in again even with a live session. `select_account` means the
    /// same here: a browser holds one session, so choosing another account
    /// is signing in as it.
    pub login: bool,
    /// Ask for consent again (third-party clients).
    pub consent: bool,
}

/// The OpenID parameters of an authorization request, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcRequest {
    pub prompt: Prompt,
    /// Seconds since the last sign-in after which the user signs in again.
    pub max_age: Option<i64>,
    pub nonce: Option<String>,
    /// A username to fill in on the sign-in page.
    pub login_hint: Option<String>,
    /// The raw `id_token_hint`, verified by the caller.
    pub id_token_hint: Option<String>,
}

impl OidcRequest {
    /// Whether the user must enter their password now, whatever the session.
    pub fn forces_sign_in(&self) -> bool {
        self.prompt.login || self.max_age == Some(0)
    }
}

/// Checks the OpenID parameters. `openid` says whether the granted scope
/// has `openid`; `require_nonce` is the client's registration.
pub fn parse_request(params: &Params, openid: bool, require_nonce: bool) -> Result<OidcRequest, OAuthError> {
    // Section 6: request objects are not supported, and say so with the
    // codes of section 3.1.2.6 rather than ignoring them.
    if params.get("request").is_some() {
        return Err(OAuthError::RequestNotSupported);
    }
    if params.get("request_uri").is_some() {
        return Err(OAuthError::RequestUriNotSupported);
    }
    let prompt = parse_prompt(params.get("prompt"))?;
    let max_age = match params.get("max_age") {
        None => None,
        // Digits only (`u32::from_str` would take a leading `+`).
        Some(v) if !v.is_empty() && v.len() <= 9 && v.bytes().all(|b| b.is_ascii_digit()) => Some(
            v.parse::<u32>()
                .map_err(|_| OAuthError::InvalidRequest("max_age must be a whole number of seconds"))?
                .into(),
        ),
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "max_age must be a whole number of seconds",
            ));
        }
    };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.len() > NONCE_MAX_LEN)
    {
        return Err(OAuthError::InvalidRequest("nonce must be 1 to 512 characters"));
    }
    if openid && require_nonce && nonce.is_none() {
        return Err(OAuthError::InvalidRequest("this client must send a nonce"));
    }
    // A hint that could not be a username is of no use; it is dropped.
    let login_hint = params
        .get("login_hint")
        .filter(|h| !h.is_empty() && h.chars().count() <= 64 && !h.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(OidcRequest {
        prompt,
        max_age,
        nonce,
        login_hint,
        id_token_hint: params.get("id_token_hint").map(str::to_owned),
    })
}

fn parse_prompt(value: Option<&str>) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    let Some(value) = value else {
        return Ok(prompt);
    };
    let mut count = 0;
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        count += 1;
        match token {
            "none" => prompt.none = true,
            "login" | "select_account" => prompt.login = true,
            "consent" => prompt.consent = true,
            // OIDC Core 1.0 errata set 2: an unsupported value is refused.
            _ => {
                return Err(OAuthError::InvalidRequest(
                    "prompt has a value this server does not support",
                ));
            }
        }
    }
    if prompt.none && count > 1 {
        return Err(OAuthError::InvalidRequest(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

/// The signed-in user as the decision needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: Uuid,
    pub auth_time: DateTime<Utc>,
}

/// What an authorization request needs before a code can be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// Nothing: issue the code.
    Proceed,
    /// The sign-in page; `fresh` when a live session is not enough.
    SignIn { fresh: bool },
    /// The consent page.
    Consent,
    /// `prompt=none` and a page would be needed: this error goes to the
    /// client (section 3.1.2.6).
    Refuse(OAuthError),
}

/// Decides what the request needs. `hint_subject` is the `sub` of a
/// verified `id_token_hint`; `consent_needed` is whether the consent page
/// would be shown without `prompt`; `third_party` whether the client may
/// see a consent page at all.
pub fn interaction(
    request: &OidcRequest,
    session: Option<SignedIn>,
    hint_subject: Option<Uuid>,
    consent_needed: bool,
    third_party: bool,
    now: DateTime<Utc>,
) -> Interaction {
    let quiet = request.prompt.none;
    let sign_in = |fresh| {
        if quiet {
            Interaction::Refuse(OAuthError::LoginRequired)
        } else {
            Interaction::SignIn { fresh }
        }
    };
    let Some(session) = session else {
        return sign_in(false);
    };
    if hint_subject.is_some_and(|sub| sub != session.user_id) {
        // The client expects another user than the one signed in here.
        return sign_in(true);
    }
    let too_old = request
        .max_age
        .is_some_and(|max| (now - session.auth_time).num_seconds() > max);
    if request.forces_sign_in() || too_old {
        return sign_in(true);
    }
    if consent_needed || (request.prompt.consent && third_party) {
        return if quiet {
            Interaction::Refuse(OAuthError::ConsentRequired)
        } else {
            Interaction::Consent
        };
    }
    Interaction::Proceed
}

/// The query of the authorization request to come back to after a forced
/// sign-in: `prompt=login` (and `select_account`) and `max_age` have been
/// honoured by the sign-in itself, so they are taken out, and the request
/// goes on with the fresh session. The client still learns the time of
/// that sign-in from `auth_time`, which every ID token carries.
pub fn after_sign_in(query: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "max_age" => {}
            "prompt" => {
                let rest: Vec<&str> = value
                    .split(' ')
                    .filter(|t| !t.is_empty() && *t != "login" && *t != "select_account")
                    .collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            _ => {
                out.append_pair(&name, &value);
            }
        }
    }
    out.finish()
}

/// What an ID token is made from.
#[derive(Debug, Clone)]
pub struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub subject: Uuid,
    pub auth_time: Option<DateTime<Utc>>,
    /// Only in the token response to the code exchange, never on refresh
    /// (section 12.2).
    pub nonce: Option<&'a str>,
    pub sid: Option<Uuid>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
    pub lifetime: Duration,
    pub now: DateTime<Utc>,
}

/// The ID token's claims (sections 2 and 3.1.3.6). It stays small: the
/// profile claims come from the UserInfo endpoint.
pub fn id_token_claims(input: &IdTokenInput<'_>) -> Map<String, Value> {
    let lifetime = i64::try_from(input.lifetime.as_secs()).unwrap_or(i64::MAX);
    let iat = input.now.timestamp();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(input.issuer));
    claims.insert("sub".into(), json!(input.subject.to_string()));
    claims.insert("aud".into(), json!(input.client_id));
    claims.insert("azp".into(), json!(input.client_id));
    claims.insert("exp".into(), json!(iat.saturating_add(lifetime)));
    claims.insert("iat".into(), json!(iat));
    if let Some(auth_time) = input.auth_time {
        claims.insert("auth_time".into(), json!(auth_time.timestamp()));
    }
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(sid) = input.sid {
        claims.insert("sid".into(), json!(sid.to_string()));
    }
    claims.insert("at_hash".into(), json!(at_hash(input.access_token)));
    claims
}

/// `at_hash` (section 3.1.3.6): the left half of the hash of the access
/// token's ASCII bytes, base64url. Our keys sign with ES256, whose hash is
/// SHA-256 (`keys::ALG`).
pub fn at_hash(access_token: &str) -> String {
    let digest = crypto::sha256(access_token.as_bytes());
    crypto::b64url(&digest[..digest.len() / 2])
}

/// The Logout Token's claims (Back-Channel Logout 1.0 section 2.4): never a
/// `nonce`, always the logout event, `sub` and (when known) `sid`.
pub fn logout_token_claims(
    issuer: &str,
    client_id: &str,
    subject: Uuid,
    sid: Option<Uuid>,
    jti: Uuid,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(subject.to_string()));
    claims.insert("aud".into(), json!(client_id));
    claims.insert("iat".into(), json!(now.timestamp()));
    claims.insert("exp".into(), json!(now.timestamp() + LOGOUT_TOKEN_TTL_SECONDS));
    claims.insert("jti".into(), json!(jti.to_string()));
    claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    if let Some(sid) = sid {
        claims.insert("sid".into(), json!(sid.to_string()));
    }
    claims
}

/// The UserInfo response (section 5.3.2): `sub` always, and the standard
/// claims the token's scopes allow (section 5.4). The user has a username
/// and nothing else a profile claim could say, so `profile` gives
/// `preferred_username`.
pub fn userinfo_claims(user: &User, scope: &ScopeSet) -> Value {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id.to_string()));
    if scope.contains(Scope::Profile) {
        claims.insert("preferred_username".into(), json!(user.username));
    }
    Value::Object(claims)
}

/// What a verified `id_token_hint` or logout `id_token_hint` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub subject: Uuid,
    /// The client it was issued to (`aud`; ours always have one).
    pub client_id: String,
    pub sid: Option<Uuid>,
}

/// Reads the claims of an ID token whose signature and issuer were
/// verified. Its expiry is not checked: a hint is commonly an old ID token
/// (section 3.1.2.1).
pub fn hint_from_claims(claims: &Map<String, Value>) -> Option<Hint> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())?;
    let client_id = match claims.get("aud")? {
        Value::String(aud) => aud.clone(),
        Value::Array(list) => match list.as_slice() {
            [Value::String(aud)] => aud.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    Some(Hint {
        subject,
        client_id,
        sid,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    fn parse(query: &str) -> Result<OidcRequest, OAuthError> {
        parse_request(&Params::parse(query), true, false)
    }

    fn signed_in(auth_time: i64) -> Option<SignedIn> {
        Some(SignedIn {
            user_id: Uuid::from_u128(1),
            auth_time: t(auth_time),
        })
    }

    #[test]
    fn request_objects_get_the_errors_section_3_1_2_6_names() {
        assert_eq!(parse("request=eyJ"), Err(OAuthError::RequestNotSupported));
        assert_eq!(
            parse("request_uri=https%3A%2F%2Fa"),
            Err(OAuthError::RequestUriNotSupported)
        );
    }

    #[test]
    fn unknown_prompt_values_and_none_with_others_are_invalid_request() {
        assert!(matches!(
            parse("prompt=create"),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse("prompt=none+login"),
            Err(OAuthError::InvalidRequest(_))
        ));
        let both = parse("prompt=login+consent").unwrap();
        assert!(both.prompt.login && both.prompt.consent);
        assert!(parse("prompt=select_account").unwrap().prompt.login);
    }

    #[test]
    fn max_age_must_be_a_whole_number() {
        assert_eq!(parse("max_age=0").unwrap().max_age, Some(0));
        for bad in ["-1", "1.5", "x", "1e3", "+5", "9999999999"] {
            assert!(parse(&format!("max_age={bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonce_is_bounded_and_required_only_when_the_client_says_so() {
        assert!(parse(&format!("nonce={}", "n".repeat(513))).is_err());
        assert_eq!(parse("nonce=abc").unwrap().nonce.as_deref(), Some("abc"));
        assert!(parse_request(&Params::parse(""), true, true).is_err());
        assert!(parse_request(&Params::parse(""), false, true).is_ok());
        assert!(parse_request(&Params::parse("nonce=x"), true, true).is_ok());
    }

    #[test]
    fn prompt_none_without_a_session_is_login_required() {
        let none = parse("prompt=none").unwrap();
        assert_eq!(
            interaction(&none, None, None, false, false, t(0)),
            Interaction::Refuse(OAuthError::LoginRequired)
        );
        assert_eq!(
            interaction(&parse("").unwrap(), None, None, false, false, t(0)),
            Interaction::SignIn { fresh: false }
        );
    }

    #[test]
    fn prompt_none_that_would_need_consent_is_consent_required() {
        let none = parse("prompt=none").unwrap();
        assert_eq!(
            interaction(&none, signed_in(0), None, true, true, t(5)),
            Interaction::Refuse(OAuthError::ConsentRequired)
        );
        assert_eq!(
            interaction(&none, signed_in(0), None, false, true, t(5)),
            Interaction::Proceed
        );
    }

    #[test]
    fn prompt_none_with_a_hint_for_another_user_is_login_required() {
        let none = parse("prompt=none").unwrap();
        assert_eq!(
            interaction(&none, signed_in(0), Some(Uuid::from_u128(2)), false, false, t(5)),
            Interaction::Refuse(OAuthError::LoginRequired)
        );
        assert_eq!(
            interaction(&none, signed_in(0), Some(Uuid::from_u128(1)), false, false, t(5)),
            Interaction::Proceed
        );
    }

    #[test]
    fn prompt_login_and_max_age_force_a_fresh_sign_in() {
        let login = parse("prompt=login").unwrap();
        assert_eq!(
            interaction(&login, signed_in(0), None, false, false, t(0)),
            Interaction::SignIn { fresh: true }
        );
        let zero = parse("max_age=0").unwrap();
        assert_eq!(
            interaction(&zero, signed_in(0), None, false, false, t(0)),
            Interaction::SignIn { fresh: true }
        );
        let ten = parse("max_age=10").unwrap();
        assert_eq!(
            interaction(&ten, signed_in(0), None, false, false, t(10)),
            Interaction::Proceed
        );
        assert_eq!(
            interaction(&ten, signed_in(0), None, false, false, t(11)),
            Interaction::SignIn { fresh: true }
        );
        let quiet_old = parse("prompt=none&max_age=10").unwrap();
        assert_eq!(
            interaction(&quiet_old, signed_in(0), None, false, false, t(11)),
            Interaction::Refuse(OAuthError::LoginRequired)
        );
    }

    #[test]
    fn prompt_consent_shows_the_page_to_third_party_clients_only() {
        let consent = parse("prompt=consent").unwrap();
        assert_eq!(
            interaction(&consent, signed_in(0), None, false, true, t(1)),
            Interaction::Consent
        );
        assert_eq!(
            interaction(&consent, signed_in(0), None, false, false, t(1)),
            Interaction::Proceed
        );
    }

    #[test]
    fn after_a_forced_sign_in_the_request_goes_on_without_login_and_max_age() {
        assert_eq!(
            after_sign_in("client_id=a&prompt=login+consent&max_age=0&state=s%20t&nonce=n"),
            "client_id=a&prompt=consent&state=s+t&nonce=n"
        );
        assert_eq!(after_sign_in("prompt=select_account&client_id=a"), "client_id=a");
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256_base64url() {
        // OIDC Core appendix A.3's example token and at_hash.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn id_token_has_the_required_claims_and_echoes_the_nonce() {
        let claims = id_token_claims(&IdTokenInput {
            issuer: "https://as.example",
            client_id: "spa",
            subject: Uuid::from_u128(1),
            auth_time: Some(t(-30)),
            nonce: Some("n-0S6_WzA2Mj"),
            sid: Some(Uuid::from_u128(9)),
            access_token: "token",
            lifetime: Duration::from_secs(600),
            now: t(0),
        });
        assert_eq!(claims["aud"], json!("spa"));
        assert_eq!(claims["azp"], json!("spa"));
        assert_eq!(claims["nonce"], json!("n-0S6_WzA2Mj"));
        assert_eq!(claims["exp"], json!(t(600).timestamp()));
        assert_eq!(claims["auth_time"], json!(t(-30).timestamp()));
        assert_eq!(claims["sid"], json!(Uuid::from_u128(9).to_string()));
        assert_eq!(claims["at_hash"], json!(at_hash("token")));
    }

    #[test]
    fn logout_token_has_the_event_and_no_nonce() {
        let claims = logout_token_claims(
            "https://as.example",
            "rp",
            Uuid::from_u128(1),
            Some(Uuid::from_u128(2)),
            Uuid::from_u128(3),
            t(0),
        );
        assert_eq!(claims["events"], json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
        assert!(!claims.contains_key("nonce"));
        assert_eq!(claims["aud"], json!("rp"));
        assert_eq!(claims["sid"], json!(Uuid::from_u128(2).to_string()));
    }

    #[test]
    fn userinfo_gives_the_username_only_with_profile() {
        let user = User {
            id: Uuid::from_u128(1),
            username: "ada".into(),
            roles: crate::domain::Roles::parse(&["user"]).unwrap(),
        };
        let openid = ScopeSet::parse_request("openid").unwrap();
        assert_eq!(
            userinfo_claims(&user, &openid),
            json!({ "sub": Uuid::from_u128(1).to_string() })
        );
        let profile = ScopeSet::parse_request("openid profile").unwrap();
        assert_eq!(
            userinfo_claims(&user, &profile)["preferred_username"],
            json!("ada")
        );
    }
}
