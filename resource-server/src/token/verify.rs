//! Access-token verification per RFC 9068 and RFC 8725, without I/O.
//!
//! - The algorithm comes from the key (its `alg`, or its curve), never from
//!   the token header; `none` and symmetric algorithms are never accepted, so
//!   an HS256 token "signed" with the public key is refused.
//! - `typ` must be `at+jwt` (RFC 9068 section 4; `application/at+jwt` too).
//! - `iss` must equal the configured issuer exactly; `aud` must contain our
//!   audience; `exp` and `iat` are required (josekit checks neither), `nbf`
//!   is honoured, all with a small leeway; `sub`, `client_id` and `jti` must
//!   be present.
//!
//! The `typ`, `iss`, `aud` and time rules are [`oauth_common::jwt`]'s, the
//! same the authorization server's introspection applies.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, ES384, ES512, EdDSA, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512};
use oauth_common::jwt;
use serde_json::Value;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    /// The longest `exp - iat` accepted: a token minted with a stolen key
    /// cannot be given a far-off expiry.
    pub max_lifetime: Duration,
}

/// The verified claims a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub client_id: String,
    pub scope: BTreeSet<String>,
    /// Empty for client-credentials tokens.
    pub roles: Vec<String>,
    pub username: Option<String>,
    pub jti: String,
    pub exp: i64,
    pub iat: i64,
    /// The browser session the grant was made in (absent for machine
    /// tokens); the revocation feed can end it.
    pub sid: Option<String>,
    /// The grant (refresh family) the token descends from.
    pub grant_id: Option<String>,
    /// The key that signed it; a cached verification is only reused while
    /// that key is still published.
    pub kid: String,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.contains(scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn scope_string(&self) -> String {
        self.scope
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The `kid` is not in the key set (it may be new: refetch, then refuse).
    UnknownKey(String),
    /// The token is not valid; the text is for logs and `error_description`.
    Invalid(&'static str),
}

/// A key from the JWKS with the one algorithm it may verify.
pub struct VerificationKey {
    pub kid: String,
    pub alg: &'static str,
    verifier: Box<dyn JwsVerifier>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The algorithm a key is for: its `alg` if it names an allowed asymmetric
/// one, else what its curve implies. RSA keys must name their algorithm
/// (RS256 and PS256 share a key type).
fn key_algorithm(jwk: &Jwk) -> Option<&'static str> {
    const ALLOWED: [&str; 10] = [
        "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
    ];
    if let Some(alg) = jwk.algorithm() {
        return ALLOWED.iter().find(|a| **a == alg).copied();
    }
    match (jwk.key_type(), jwk.curve()) {
        ("EC", Some("P-256")) => Some("ES256"),
        ("EC", Some("P-384")) => Some("ES384"),
        ("EC", Some("P-521")) => Some("ES512"),
        ("OKP", Some("Ed25519" | "Ed448")) => Some("EdDSA"),
        _ => None,
    }
}

fn verifier_for(jwk: &Jwk, alg: &str) -> Option<Box<dyn JwsVerifier>> {
    fn boxed<V: JwsVerifier + 'static>(r: Result<V, josekit::JoseError>) -> Option<Box<dyn JwsVerifier>> {
        r.ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>)
    }
    match alg {
        "ES256" => boxed(ES256.verifier_from_jwk(jwk)),
        "ES384" => boxed(ES384.verifier_from_jwk(jwk)),
        "ES512" => boxed(ES512.verifier_from_jwk(jwk)),
        "RS256" => boxed(RS256.verifier_from_jwk(jwk)),
        "RS384" => boxed(RS384.verifier_from_jwk(jwk)),
        "RS512" => boxed(RS512.verifier_from_jwk(jwk)),
        "PS256" => boxed(PS256.verifier_from_jwk(jwk)),
        "PS384" => boxed(PS384.verifier_from_jwk(jwk)),
        "PS512" => boxed(PS512.verifier_from_jwk(jwk)),
        "EdDSA" => boxed(EdDSA.verifier_from_jwk(jwk)),
        _ => None,
    }
}

/// The usable signing keys of a JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// Keeps keys with a `kid`, `use` absent or `sig`, and an allowed
    /// asymmetric algorithm. Symmetric (`oct`) keys and private members are
    /// never used.
    pub fn from_jwks(document: &Value) -> Self {
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| {
                        let map = k.as_object()?.clone();
                        if map.get("use").is_some_and(|u| u != "sig") || map.contains_key("d") {
                            return None;
                        }
                        let jwk = Jwk::from_map(map).ok()?;
                        let kid = jwk.key_id()?.to_owned();
                        let alg = key_algorithm(&jwk)?;
                        let verifier = verifier_for(&jwk, alg)?;
                        Some(VerificationKey { kid, alg, verifier })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    fn find(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

fn header(token: &str) -> Result<serde_json::Map<String, Value>, VerifyError> {
    let encoded = token
        .split('.')
        .next()
        .ok_or(VerifyError::Invalid("malformed token"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| VerifyError::Invalid("malformed token header"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::Invalid("malformed token header")),
    }
}

fn invalid(e: jwt::ClaimError) -> VerifyError {
    VerifyError::Invalid(e.as_str())
}

/// A non-empty string claim: an empty `sub` identifies no one.
fn string(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The key id a token names, if its header parses (for logs and refetch).
pub fn key_id(token: &str) -> Option<String> {
    header(token)
        .ok()?
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A compact JWS's claims and `kid` if a key of `keys` signed it: the key
/// named by its `kid`, with that key's own algorithm (never the header's
/// choice, RFC 8725 section 3.1). `typ_ok` judges the header's `typ`
/// first, so a JWT of another kind is refused before any signature work.
fn signed_claims(
    token: &str,
    keys: &KeySet,
    typ_ok: impl FnOnce(Option<&str>) -> Result<(), VerifyError>,
) -> Result<(serde_json::Map<String, Value>, String), VerifyError> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(VerifyError::Invalid("malformed token"));
    }
    let header = header(token)?;
    typ_ok(header.get("typ").and_then(Value::as_str))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(VerifyError::Invalid("token has no key id"))?;
    let key = keys
        .find(kid)
        .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))?;
    if alg != key.alg {
        return Err(VerifyError::Invalid("token algorithm does not match its key"));
    }
    let (payload, _) = josekit::jwt::decode_with_verifier(token, key.verifier.as_ref())
        .map_err(|_| VerifyError::Invalid("signature verification failed"))?;
    Ok((payload.claims_set().clone(), kid.to_owned()))
}

/// Verifies `token` against `keys` and `policy` at `now`.
pub fn verify(
    token: &str,
    keys: &KeySet,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    let (claims, kid) = signed_claims(token, keys, |typ| jwt::check_type(typ).map_err(invalid))?;
    let claims = &claims;
    jwt::check_issuer(claims, &policy.issuer).map_err(invalid)?;
    jwt::check_audience(claims, &policy.audience).map_err(invalid)?;
    let rules = jwt::TimeRules {
        leeway: policy.leeway,
        max_lifetime: Some(policy.max_lifetime),
    };
    let jwt::Validity { exp, iat } = jwt::check_times(claims, now, &rules).map_err(invalid)?;
    let sub = string(claims, "sub").ok_or(VerifyError::Invalid("token has no subject"))?;
    let client_id = string(claims, "client_id").ok_or(VerifyError::Invalid("token has no client_id"))?;
    let jti = string(claims, "jti").ok_or(VerifyError::Invalid("token has no jti"))?;
    let scope = string(claims, "scope")
        .map(|s| {
            s.split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let roles = claims
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Claims {
        sub,
        client_id,
        scope,
        roles,
        username: string(claims, "preferred_username"),
        jti,
        exp,
        iat,
        sid: string(claims, "sid"),
        grant_id: string(claims, "grant_id"),
        kid,
    })
}

/// Verifies a Security Event Token of the revocation feed (RFC 8417): the
/// `typ` must be `secevent+jwt` (so no other JWT of the issuer passes for
/// one), signed by a key of the issuer's JWKS with that key's algorithm,
/// and `iss` must be the issuer. Returns its claims.
pub fn verify_set(
    token: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<serde_json::Map<String, Value>, VerifyError> {
    let (claims, _) = signed_claims(token, keys, |typ| {
        let typ = typ.unwrap_or("");
        if typ.eq_ignore_ascii_case("secevent+jwt") || typ.eq_ignore_ascii_case("application/secevent+jwt") {
            Ok(())
        } else {
            Err(VerifyError::Invalid("not a security event token"))
        }
    })?;
    jwt::check_issuer(&claims, issuer).map_err(invalid)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use josekit::jwk::KeyPair as _;
    use josekit::jws::JwsHeader;
    use josekit::jwt::JwtPayload;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://auth.example.com";
    const AUDIENCE: &str = "https://api.example.com/api";
    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        pair: josekit::jwk::alg::ec::EcKeyPair,
        keys: KeySet,
        policy: Policy,
    }

    fn fixture() -> Fixture {
        let pair = ES256.generate_key_pair().unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id("k1");
        jwk.set_algorithm("ES256");
        let keys = KeySet::from_jwks(&json!({ "keys": [Value::Object(jwk.into())] }));
        let policy = Policy {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            leeway: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(86_400),
        };
        Fixture { pair, keys, policy }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "client_id": "c1", "jti": "j1",
            "iat": NOW, "exp": NOW + 600, "scope": "profile notes:read",
            "roles": ["user"], "preferred_username": "alice",
        })
    }

    impl Fixture {
        fn sign(&self, claims: &Value) -> String {
            let mut header = JwsHeader::new();
            header.set_token_type("at+jwt");
            header.set_key_id("k1");
            let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
            let signer = ES256.signer_from_der(self.pair.to_der_private_key()).unwrap();
            josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap()
        }

        fn verify_at(&self, claims: &Value, now: i64) -> Result<Claims, VerifyError> {
            let now = Utc.timestamp_opt(now, 0).single().unwrap();
            verify(&self.sign(claims), &self.keys, &self.policy, now)
        }
    }

    fn set(name: &str, value: Value) -> Value {
        let mut c = claims();
        c[name] = value;
        c
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let f = fixture();
        let c = f.verify_at(&claims(), NOW).unwrap();
        assert_eq!(c.sub, "u1");
        assert_eq!(c.client_id, "c1");
        assert_eq!(c.scope_string(), "notes:read profile");
        assert_eq!(c.roles, ["user"]);
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!((c.iat, c.exp), (NOW, NOW + 600));
    }

    #[test]
    fn expiry_allows_exactly_the_leeway() {
        let f = fixture();
        let exp = NOW + 600;
        assert!(f.verify_at(&claims(), exp + 29).is_ok());
        assert_eq!(
            f.verify_at(&claims(), exp + 30),
            Err(VerifyError::Invalid("token has expired"))
        );
    }

    #[test]
    fn nbf_and_iat_in_the_future_allow_exactly_the_leeway() {
        let f = fixture();
        assert!(f.verify_at(&set("nbf", json!(NOW + 30)), NOW).is_ok());
        assert_eq!(
            f.verify_at(&set("nbf", json!(NOW + 31)), NOW),
            Err(VerifyError::Invalid("token is not valid yet"))
        );
        let iat = |t: i64| {
            let mut c = set("iat", json!(t));
            c["exp"] = json!(t + 600);
            c
        };
        assert!(f.verify_at(&iat(NOW + 30), NOW).is_ok());
        assert_eq!(
            f.verify_at(&iat(NOW + 31), NOW),
            Err(VerifyError::Invalid("token was issued in the future"))
        );
    }

    #[test]
    fn required_claims_must_be_present_and_non_empty() {
        let f = fixture();
        for name in ["iss", "aud", "exp", "iat", "sub", "client_id", "jti"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(name);
            assert!(f.verify_at(&c, NOW).is_err(), "without {name}");
        }
        for name in ["sub", "client_id", "jti"] {
            assert!(f.verify_at(&set(name, json!("")), NOW).is_err(), "empty {name}");
        }
    }

    #[test]
    fn the_audience_may_be_a_list_that_contains_ours() {
        let f = fixture();
        assert!(f.verify_at(&set("aud", json!(["x", AUDIENCE])), NOW).is_ok());
        assert_eq!(
            f.verify_at(&set("aud", json!(["x", "y"])), NOW),
            Err(VerifyError::Invalid("wrong audience"))
        );
    }

    #[test]
    fn an_unknown_kid_is_reported_so_the_caller_can_refetch() {
        let f = fixture();
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id("k9");
        let payload = JwtPayload::from_map(claims().as_object().unwrap().clone()).unwrap();
        let signer = ES256.signer_from_der(f.pair.to_der_private_key()).unwrap();
        let token = josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap();
        let now = Utc.timestamp_opt(NOW, 0).single().unwrap();
        assert_eq!(
            verify(&token, &f.keys, &f.policy, now),
            Err(VerifyError::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn only_asymmetric_signing_keys_enter_the_key_set() {
        let pair = ES256.generate_key_pair().unwrap();
        let public = |kid: &str, extra: Value| {
            let mut jwk = pair.to_jwk_public_key();
            jwk.set_key_id(kid);
            let mut map: serde_json::Map<String, Value> = jwk.into();
            for (k, v) in extra.as_object().unwrap() {
                map.insert(k.clone(), v.clone());
            }
            Value::Object(map)
        };
        let mut private = pair.to_jwk_private_key();
        private.set_key_id("private");
        let document = json!({"keys": [
            public("ok", json!({})),
            public("enc", json!({"use": "enc"})),
            public("hmac-alg", json!({"alg": "HS256"})),
            {"kty": "oct", "kid": "oct", "k": "c2VjcmV0", "alg": "HS256"},
            Value::Object(private.into()),
        ]});
        let mut no_kid = pair.to_jwk_public_key();
        no_kid.set_algorithm("ES256");
        let keys = KeySet::from_jwks(&document);
        assert_eq!(keys.len(), 1);
        assert!(keys.contains("ok"));
        assert!(KeySet::from_jwks(&json!({"keys": [Value::Object(no_kid.into())]})).is_empty());
        assert!(KeySet::from_jwks(&json!({"nope": []})).is_empty());
    }
}
