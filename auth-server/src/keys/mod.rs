//! Signing keys: creation, encryption at rest, the in-memory key set every
//! request signs with, and the JWKS document.
//!
//! Lifecycle (see `docs/keys.md` and [`lifecycle`]): a key is *published*
//! from the moment it is created; it *signs* from `activates_at` until a
//! newer key activates (`keys rotate` and the scheduled rotation set
//! `activates_at` in the future, so resource servers learn the key before
//! any token uses it); after that it stays published until every token it
//! signed has expired (access-token lifetime plus a minute of clock
//! leeway), then it is dropped. `keys retire` ends a key early.

pub mod lifecycle;
pub mod rotation;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use josekit::jwk::Jwk;
use josekit::jwk::KeyPair as _;
use josekit::jws::alg::ecdsa::EcdsaJwsVerifier;
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value, json};

use self::lifecycle::{State, Timed, Timeline};
use crate::crypto::{self, CryptoError};
use crate::protocol::tokens::JwtType;
use crate::storage::keys::KeyRow;

/// The only algorithm we sign with (RFC 9068 requires an asymmetric one).
pub const ALG: &str = "ES256";

/// Clock leeway added to a retired key's publication.
pub const RETIREMENT_LEEWAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl From<josekit::JoseError> for KeyError {
    fn from(e: josekit::JoseError) -> Self {
        KeyError(e.to_string())
    }
}

impl From<CryptoError> for KeyError {
    fn from(e: CryptoError) -> Self {
        KeyError(e.0)
    }
}

impl From<KeyError> for crate::protocol::StoreError {
    fn from(e: KeyError) -> Self {
        crate::protocol::StoreError::Crypto(e.0)
    }
}

/// RFC 7638 thumbprint of a P-256 public JWK, used as its `kid`.
fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    let member = |name: &str| -> Result<&str, KeyError> {
        jwk.parameter(name)
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError(format!("public key lacks {name}")))
    };
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        member("crv")?,
        member("x")?,
        member("y")?
    );
    Ok(crypto::b64url(&crypto::sha256(canonical.as_bytes())))
}

/// Generates a new ES256 key, sealed for storage.
pub fn generate(
    wrap_key: &[u8; 32],
    now: DateTime<Utc>,
    activates_at: DateTime<Utc>,
) -> Result<KeyRow, KeyError> {
    let pair = ES256.generate_key_pair()?;
    let mut jwk = pair.to_jwk_public_key();
    let kid = thumbprint(&jwk)?;
    jwk.set_key_id(&kid);
    jwk.set_algorithm(ALG);
    jwk.set_key_use("sig");
    let sealed = crypto::seal(wrap_key, &pair.to_der_private_key(), kid.as_bytes())?;
    Ok(KeyRow {
        kid,
        alg: ALG.to_owned(),
        public_jwk: jwk.to_string(),
        private_key_sealed: sealed,
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

/// ES256 signing for josekit's JWS encoder: SHA-256 and ECDSA over P-256
/// (RFC 7518 section 3.4), with the signature as raw `r || s`. josekit's own
/// `EcdsaJwsSigner` builds an EVP signing context for every signature,
/// which in OpenSSL 3 costs about a third again of the ECDSA itself; this
/// signs the digest with the key directly. A test checks that josekit's
/// verifier accepts what it produces.
#[derive(Clone)]
struct Es256Signer {
    key: openssl::ec::EcKey<openssl::pkey::Private>,
    kid: String,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl josekit::jws::JwsSigner for Es256Signer {
    fn algorithm(&self) -> &dyn josekit::jws::JwsAlgorithm {
        &ES256
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }

    fn signature_len(&self) -> usize {
        64
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, josekit::JoseError> {
        let digest = openssl::sha::sha256(message);
        let signature = openssl::ecdsa::EcdsaSig::sign(&digest, &self.key)
            .map_err(|e| josekit::JoseError::InvalidSignature(e.into()))?;
        let mut raw = signature
            .r()
            .to_vec_padded(32)
            .map_err(|e| josekit::JoseError::InvalidSignature(e.into()))?;
        raw.extend(
            signature
                .s()
                .to_vec_padded(32)
                .map_err(|e| josekit::JoseError::InvalidSignature(e.into()))?,
        );
        Ok(raw)
    }

    fn box_clone(&self) -> Box<dyn josekit::jws::JwsSigner> {
        Box::new(self.clone())
    }
}

/// A key's private and public material, decrypted once per process.
struct Material {
    signer: Es256Signer,
    verifier: EcdsaJwsVerifier,
    public_jwk: Map<String, Value>,
}

impl Material {
    /// Opens the sealed private key with the first of `wraps` that fits.
    fn open(row: &KeyRow, wraps: &[[u8; 32]]) -> Result<Self, KeyError> {
        if row.alg != ALG {
            return Err(KeyError(format!(
                "key {} has unsupported alg {}",
                row.kid, row.alg
            )));
        }
        let der = open_sealed(row, wraps)?;
        // josekit parses the key (and would sign with it); we sign through
        // our own `JwsSigner`, which is the same algorithm without
        // josekit's per-call EVP setup (see `Es256Signer`).
        let _ = ES256.signer_from_der(&der)?;
        let signer = Es256Signer {
            key: openssl::ec::EcKey::private_key_from_der(&der).map_err(|e| KeyError(e.to_string()))?,
            kid: row.kid.clone(),
        };
        let jwk = Jwk::from_bytes(row.public_jwk.as_bytes())?;
        let verifier = ES256.verifier_from_jwk(&jwk)?;
        Ok(Self {
            signer,
            verifier,
            public_jwk: jwk.into(),
        })
    }
}

/// The private key of `row` (DER), opened with the first of `wraps` that
/// fits, and that wrap's position.
pub fn open_sealed_at(row: &KeyRow, wraps: &[[u8; 32]]) -> Result<(Vec<u8>, usize), KeyError> {
    wraps
        .iter()
        .enumerate()
        .find_map(|(i, wrap)| {
            crypto::open(wrap, &row.private_key_sealed, row.kid.as_bytes())
                .ok()
                .map(|der| (der, i))
        })
        .ok_or_else(|| {
            KeyError(format!(
                "cannot decrypt signing key {}: it was stored under neither AUTH_KEY_ENCRYPTION_KEY nor AUTH_KEY_ENCRYPTION_KEY_PREVIOUS",
                row.kid
            ))
        })
}

fn open_sealed(row: &KeyRow, wraps: &[[u8; 32]]) -> Result<Vec<u8>, KeyError> {
    open_sealed_at(row, wraps).map(|(der, _)| der)
}

/// `row`'s private key sealed again under `wrap` (`keys rewrap`).
pub fn reseal(row: &KeyRow, der: &[u8], wrap: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
    Ok(crypto::seal(wrap, der, row.kid.as_bytes())?)
}

/// A key ready to sign, with its times as of the last reload.
pub struct LoadedKey {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    material: Arc<Material>,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl Timed for LoadedKey {
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn activates_at(&self) -> DateTime<Utc> {
        self.activates_at
    }
    fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.retired_at
    }
}

impl Timed for KeyRow {
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn activates_at(&self) -> DateTime<Utc> {
        self.activates_at
    }
    fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.retired_at
    }
}

/// The keys as of one reload: which signs when, which are published.
#[derive(Debug)]
pub struct KeySet {
    /// Ascending by `activates_at`.
    keys: Vec<Arc<LoadedKey>>,
    access_token_ttl: Duration,
    /// The JWKS document as of the reload, served as is.
    jwks_body: String,
    jwks_etag: String,
}

impl KeySet {
    fn timeline(&self) -> Timeline<'_, Arc<LoadedKey>> {
        Timeline::new(&self.keys, self.access_token_ttl, RETIREMENT_LEEWAY)
    }

    /// The key that signs at `now`: the newest live one already active.
    pub fn signing_key(&self, now: DateTime<Utc>) -> Option<&LoadedKey> {
        let i = self.timeline().signing(now)?;
        self.keys.get(i).map(AsRef::as_ref)
    }

    /// Keys a verifier may meet at `now`: pending ones, the signing one, and
    /// retiring ones whose tokens may still be unexpired.
    pub fn published(&self, now: DateTime<Utc>) -> Vec<&LoadedKey> {
        self.timeline()
            .published(now)
            .filter_map(|i| self.keys.get(i))
            .map(AsRef::as_ref)
            .collect()
    }

    /// Kids that are no longer published and can be deleted.
    pub fn expired_kids(&self, now: DateTime<Utc>) -> Vec<String> {
        let timeline = self.timeline();
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, _)| timeline.state(*i, now) == State::Retired)
            .map(|(_, k)| k.kid.clone())
            .collect()
    }

    /// The JWKS document (public keys only) for `now`.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<Value> = self
            .published(now)
            .into_iter()
            .rev()
            .map(|k| Value::Object(k.material.public_jwk.clone()))
            .collect();
        json!({ "keys": keys })
    }

    /// Verifies a token we signed with a key that is still published, and
    /// returns its claims. Checks the signature, `alg` (from the key, never
    /// from the token) and `typ: at+jwt`; the caller checks the claims.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Map<String, Value>> {
        self.verify_with_kid(token, now).map(|(claims, _)| claims)
    }

    /// [`KeySet::verify`], with the `kid` of the key that verified it.
    fn verify_with_kid(&self, token: &str, now: DateTime<Utc>) -> Option<(Map<String, Value>, String)> {
        let (claims, header) = self.decode(token, now)?;
        oauth_common::jwt::check_type(header.token_type()).ok()?;
        let kid = header.key_id()?.to_owned();
        Some((claims, kid))
    }

    /// A token's claims and header if a key published at `now` signed it
    /// (the key named by its `kid`, with that key's algorithm).
    fn decode(&self, token: &str, now: DateTime<Utc>) -> Option<(Map<String, Value>, JwsHeader)> {
        let published = self.published(now);
        let (payload, header) = jwt::decode_with_verifier_selector(token, |header| {
            Ok(header
                .key_id()
                .and_then(|kid| published.iter().find(|k| k.kid == kid))
                .map(|k| &k.material.verifier as &dyn josekit::jws::JwsVerifier))
        })
        .ok()?;
        Some((payload.claims_set().clone(), header))
    }

    /// The claims of an ID token we signed with a key that is still
    /// published and whose `iss` is `issuer`: an `id_token_hint`. Its times
    /// are not checked (a hint may be an expired ID token, OIDC Core
    /// section 3.1.2.1), but its `typ` must be an ID token's (`JWT`, as we
    /// sign them), so no other token of ours is ever taken for one.
    pub fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Option<Map<String, Value>> {
        let (claims, header) = self.decode(token, now)?;
        if header.token_type() != Some(JwtType::Id.header()) {
            return None;
        }
        (claims.get("iss").and_then(Value::as_str) == Some(issuer)).then_some(claims)
    }

    /// Whether `kid` is among the keys a verifier may meet at `now`.
    fn publishes(&self, kid: &str, now: DateTime<Utc>) -> bool {
        self.published(now).iter().any(|k| k.kid == kid)
    }

    /// The JWKS document computed at the last reload, and its ETag.
    pub fn jwks_document(&self) -> (&str, &str) {
        (&self.jwks_body, &self.jwks_etag)
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`).
    pub fn sign(&self, claims: Map<String, Value>, now: DateTime<Utc>) -> Result<String, KeyError> {
        self.sign_typed(JwtType::Access, claims, now)
    }

    /// Signs `claims` as a JWT of kind `typ` (its `typ` header).
    pub fn sign_typed(
        &self,
        typ: JwtType,
        claims: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let key = self
            .signing_key(now)
            .ok_or_else(|| KeyError("no active signing key".into()))?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ.header());
        header.set_key_id(&key.kid);
        let payload = JwtPayload::from_map(claims)?;
        Ok(jwt::encode_with_signer(&payload, &header, &key.material.signer)?)
    }
}

impl crate::protocol::tokens::AccessTokenSigner for KeySet {
    fn sign_typed(
        &self,
        typ: JwtType,
        claims: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, crate::protocol::StoreError> {
        KeySet::sign_typed(self, typ, claims, now).map_err(Into::into)
    }
}

impl crate::protocol::introspect::AccessTokenVerifier for KeySet {
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Map<String, Value>> {
        KeySet::verify(self, token, now)
    }
}

/// An access token whose signature and `typ` one of our keys verified.
#[derive(Debug)]
pub struct VerifiedToken {
    claims: Map<String, Value>,
    exp: i64,
    kid: String,
}

impl oauth_common::verified::Verified for VerifiedToken {
    fn exp(&self) -> i64 {
        self.exp
    }
    fn kid(&self) -> &str {
        &self.kid
    }
}

/// Tokens verified recently, shared by the workers (introspection).
pub type VerifiedTokens = oauth_common::verified::VerifiedCache<VerifiedToken>;

/// [`KeySet`] verification with a cache in front: a token verified before
/// is served from the cache while it is unexpired (plus the leeway) and the
/// key that verified it is still published; the caller checks the claims
/// (and revocation) every time.
pub struct CachingVerifier<'a> {
    pub keys: &'a KeySet,
    pub cache: &'a VerifiedTokens,
}

impl crate::protocol::introspect::AccessTokenVerifier for CachingVerifier<'_> {
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Map<String, Value>> {
        let key = VerifiedTokens::key(token);
        let seconds = now.timestamp();
        if let Some(hit) = self.cache.get(&key, seconds, oauth_common::jwt::DEFAULT_LEEWAY)
            && self.keys.publishes(&hit.kid, now)
        {
            return Some(hit.claims.clone());
        }
        let (claims, kid) = self.keys.verify_with_kid(token, now)?;
        // A token without a numeric `exp` is refused by the claim checks
        // anyway; it is not worth a cache entry.
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            let entry = VerifiedToken {
                claims: claims.clone(),
                exp,
                kid,
            };
            self.cache.insert(key, Arc::new(entry), seconds);
        }
        Some(claims)
    }
}

/// Signed tokens kept by a key of their own (the revocation feed's SETs,
/// by event `jti`): each is signed once per signing key, however many
/// readers ask for it. Bounded; past the bound it starts again.
#[derive(Debug, Default)]
pub struct SignedCache(std::sync::Mutex<HashMap<uuid::Uuid, (String, String)>>);

/// Signed tokens a [`SignedCache`] keeps at most.
const SIGNED_CAPACITY: usize = 50_000;

impl SignedCache {
    /// The token cached for `id` when `current_kid` signed it, or what
    /// `sign` returns (`(kid, token)`), cached.
    pub fn get_or_sign<E>(
        &self,
        id: uuid::Uuid,
        current_kid: Option<&str>,
        sign: impl FnOnce() -> Result<(String, String), E>,
    ) -> Result<String, E> {
        let mut cache = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((kid, token)) = cache.get(&id)
            && Some(kid.as_str()) == current_kid
        {
            return Ok(token.clone());
        }
        let (kid, token) = sign()?;
        if cache.len() >= SIGNED_CAPACITY {
            cache.clear();
        }
        cache.insert(id, (kid, token.clone()));
        Ok(token)
    }
}

/// The process-wide, periodically reloaded key set.
pub struct KeyManager {
    current: RwLock<Arc<KeySet>>,
    /// The current KEK's wrap first, then the previous KEK's, if any.
    wraps: Vec<[u8; 32]>,
    access_token_ttl: Duration,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager").finish_non_exhaustive()
    }
}

impl KeyManager {
    /// `wraps`: the current KEK's wrapping key first, then the previous
    /// KEK's while a rotation is under way.
    pub fn new(
        rows: &[KeyRow],
        wraps: &[[u8; 32]],
        access_token_ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Self, KeyError> {
        let set = Self::build(rows, wraps, access_token_ttl, None, now)?;
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
            wraps: wraps.to_vec(),
            access_token_ttl,
        })
    }

    fn build(
        rows: &[KeyRow],
        wraps: &[[u8; 32]],
        access_token_ttl: Duration,
        previous: Option<&KeySet>,
        now: DateTime<Utc>,
    ) -> Result<KeySet, KeyError> {
        // Material is decrypted once per process; times come from the rows
        // every reload (an operator may retire or promote a key).
        let known: HashMap<&str, &Arc<Material>> = previous
            .map(|p| p.keys.iter().map(|k| (k.kid.as_str(), &k.material)).collect())
            .unwrap_or_default();
        let mut keys = rows
            .iter()
            .map(|row| {
                let material = match known.get(row.kid.as_str()) {
                    Some(m) => Arc::clone(m),
                    None => Arc::new(Material::open(row, wraps)?),
                };
                Ok(Arc::new(LoadedKey {
                    kid: row.kid.clone(),
                    created_at: row.created_at,
                    activates_at: row.activates_at,
                    retired_at: row.retired_at,
                    material,
                }))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        keys.sort_by_key(|k| k.activates_at);
        let mut set = KeySet {
            keys,
            access_token_ttl,
            jwks_body: String::new(),
            jwks_etag: String::new(),
        };
        set.jwks_body = set.jwks(now).to_string();
        set.jwks_etag = format!(
            "\"{}\"",
            crypto::b64url(&crypto::sha256(set.jwks_body.as_bytes())[..16])
        );
        Ok(set)
    }

    /// The key set to use for this request.
    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the key set with freshly loaded rows.
    pub fn replace(&self, rows: &[KeyRow], now: DateTime<Utc>) -> Result<(), KeyError> {
        let previous = self.snapshot();
        let set = Self::build(rows, &self.wraps, self.access_token_ttl, Some(&previous), now)?;
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    const WRAP: [u8; 32] = [9u8; 32];

    #[test]
    fn pending_key_is_published_but_does_not_sign_until_active() {
        let first = generate(&WRAP, t(0), t(0)).unwrap();
        let second = generate(&WRAP, t(100), t(1000)).unwrap();
        let manager = KeyManager::new(
            &[first.clone(), second.clone()],
            &[WRAP],
            Duration::from_secs(600),
            t(0),
        )
        .unwrap();
        let set = manager.snapshot();
        assert_eq!(set.signing_key(t(500)).unwrap().kid, first.kid);
        assert_eq!(set.published(t(500)).len(), 2);
        assert_eq!(set.signing_key(t(1000)).unwrap().kid, second.kid);
        // The first key signed until t(1000); its tokens live 600 s more,
        // plus leeway.
        assert_eq!(set.published(t(1000 + 600 + 59)).len(), 2);
        let later = set.published(t(1000 + 600 + 61));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kid, second.kid);
        assert_eq!(set.expired_kids(t(1000 + 600 + 61)), vec![first.kid]);
    }

    #[test]
    fn jwks_holds_public_keys_only_with_kid_alg_and_use() {
        let row = generate(&WRAP, t(0), t(0)).unwrap();
        let manager = KeyManager::new(
            std::slice::from_ref(&row),
            &[WRAP],
            Duration::from_secs(600),
            t(0),
        )
        .unwrap();
        let jwks = manager.snapshot().jwks(t(1));
        let key = &jwks["keys"][0];
        assert_eq!(key["kid"], row.kid.as_str());
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kty"], "EC");
        assert!(key.get("d").is_none(), "private part leaked: {key}");
    }

    #[test]
    fn a_wrong_wrapping_key_is_a_clear_error() {
        let row = generate(&WRAP, t(0), t(0)).unwrap();
        let e = KeyManager::new(&[row], &[[1u8; 32]], Duration::from_secs(600), t(0)).unwrap_err();
        assert!(e.0.contains("AUTH_KEY_ENCRYPTION_KEY"), "{e}");
    }

    #[test]
    fn our_signatures_verify_with_josekits_verifier_and_the_published_key() {
        let row = generate(&WRAP, t(0), t(0)).unwrap();
        let manager = KeyManager::new(
            std::slice::from_ref(&row),
            &[WRAP],
            Duration::from_secs(600),
            t(0),
        )
        .unwrap();
        let set = manager.snapshot();
        for i in 0..20 {
            let mut claims = Map::new();
            claims.insert("n".into(), json!(i));
            let token = set.sign(claims, t(1)).unwrap();
            let jwk = Jwk::from_bytes(row.public_jwk.as_bytes()).unwrap();
            let verifier = ES256.verifier_from_jwk(&jwk).unwrap();
            let (payload, _) = josekit::jwt::decode_with_verifier(&token, &verifier).unwrap();
            assert_eq!(payload.claim("n"), Some(&json!(i)));
        }
    }

    #[test]
    fn signed_token_has_at_jwt_type_and_kid() {
        let row = generate(&WRAP, t(0), t(0)).unwrap();
        let manager = KeyManager::new(
            std::slice::from_ref(&row),
            &[WRAP],
            Duration::from_secs(600),
            t(0),
        )
        .unwrap();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("u1"));
        let token = manager.snapshot().sign(claims, t(1)).unwrap();
        let header = josekit::jwt::decode_header(&token).unwrap();
        assert_eq!(header.claim("typ"), Some(&json!("at+jwt")));
        assert_eq!(header.claim("kid"), Some(&json!(row.kid)));
        assert_eq!(header.claim("alg"), Some(&json!("ES256")));
    }

    #[test]
    fn a_cached_token_is_refused_once_its_key_is_no_longer_published() {
        use crate::protocol::introspect::AccessTokenVerifier as _;
        let first = generate(&WRAP, t(0), t(0)).unwrap();
        let second = generate(&WRAP, t(100), t(1000)).unwrap();
        let manager = KeyManager::new(&[first, second], &[WRAP], Duration::from_secs(600), t(0)).unwrap();
        let set = manager.snapshot();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("u"));
        claims.insert("exp".into(), json!(t(100_000).timestamp()));
        let token = set.sign(claims, t(10)).unwrap();
        let cache = VerifiedTokens::new(10);
        let verifier = CachingVerifier {
            keys: &set,
            cache: &cache,
        };
        assert_eq!(verifier.verify(&token, t(20)).unwrap()["sub"], "u");
        assert_eq!(cache.len(), 1);
        assert_eq!(verifier.verify(&token, t(30)).unwrap()["sub"], "u");
        // The signing key retires; the cache must not outlive its trust.
        let retired = t(1000 + 600 + 61);
        assert!(set.verify(&token, retired).is_none());
        assert!(verifier.verify(&token, retired).is_none());
        // A different token (tampered) is never a hit for this one.
        let tampered = format!("{token}x");
        assert!(verifier.verify(&tampered, t(30)).is_none());
    }
}
