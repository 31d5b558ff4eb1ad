//! Small cryptographic helpers over OpenSSL (already linked for josekit) and
//! the OS random number generator.
//!
//! Bearer secrets we generate (client secrets, refresh tokens, codes,
//! session ids) carry 256 bits from the OS RNG and are stored only as
//! SHA-256 digests: with that much entropy a fast hash is enough, and it
//! keeps lookups and client authentication cheap.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CryptoError {}

impl From<openssl::error::ErrorStack> for CryptoError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CryptoError(e.to_string())
    }
}

/// `N` bytes from the operating system's RNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| CryptoError(format!("OS RNG failed: {e}")))?;
    Ok(buf)
}

/// `N` bytes from OpenSSL's DRBG (seeded from the OS, no system call per
/// use): for identifiers such as `jti`, which must be unique and
/// unguessable but are not secrets. Secrets use [`random_bytes`].
pub fn random_userspace<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(buf)
}

/// A new 256-bit bearer secret, base64url without padding (43 characters).
pub fn random_token() -> Result<String, CryptoError> {
    Ok(b64url(&random_bytes::<32>()?))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// The stored form of a bearer secret.
pub fn token_hash(token: &str) -> Vec<u8> {
    sha256(token.as_bytes()).to_vec()
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], CryptoError> {
    let pkey = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
    signer.update(data)?;
    let mac = signer.sign_to_vec()?;
    let mut out = [0u8; 32];
    if mac.len() != out.len() {
        return Err(CryptoError("unexpected HMAC length".into()));
    }
    out.copy_from_slice(&mac);
    Ok(out)
}

/// Constant-time equality for secrets of possibly different lengths (the
/// length itself is not secret: every value we compare is a fixed-size
/// digest or MAC).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// AES-256-GCM with a random nonce: returns `nonce || ciphertext || tag`.
/// `aad` binds the ciphertext to its context (a key id, a token hash).
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(Cipher::aes_256_gcm(), key, Some(&nonce), aad, plaintext, &mut tag)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Reverses [`seal`]; fails if the key, the AAD or the data are wrong.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError("sealed data is too short".into()));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad, ciphertext, tag)
        .map_err(|_| CryptoError("decryption failed (wrong key or corrupted data)".into()))
}

/// Derived keys, one per purpose, from the configured key-encryption key,
/// so a leak of one derived key does not expose the others.
#[derive(Clone)]
pub struct ServerKeys {
    /// Encrypts signing private keys at rest.
    pub signing_key_wrap: [u8; 32],
    /// MACs CSRF tokens.
    pub csrf: [u8; 32],
    /// Encrypts the successor pair kept for the refresh grace window.
    pub refresh_grace: [u8; 32],
    /// The same keys derived from `AUTH_KEY_ENCRYPTION_KEY_PREVIOUS` while a
    /// KEK rotation is under way: they open and verify, never seal or sign.
    pub previous: Option<Box<ServerKeys>>,
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeys([redacted])")
    }
}

impl ServerKeys {
    pub fn derive(master: &[u8; 32]) -> Result<Self, CryptoError> {
        Ok(Self {
            signing_key_wrap: hmac_sha256(master, b"oauth/signing-key-wrap/v1")?,
            csrf: hmac_sha256(master, b"oauth/csrf/v1")?,
            refresh_grace: hmac_sha256(master, b"oauth/refresh-grace/v1")?,
            previous: None,
        })
    }

    /// Keys derived from `master`, also accepting what `previous` produced.
    pub fn derive_with_previous(master: &[u8; 32], previous: Option<&[u8; 32]>) -> Result<Self, CryptoError> {
        let mut keys = Self::derive(master)?;
        keys.previous = previous.map(Self::derive).transpose()?.map(Box::new);
        Ok(keys)
    }

    /// The CSRF keys a presented token may be made with, current first.
    pub fn csrf_keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.csrf).chain(self.previous.as_deref().map(|p| &p.csrf))
    }

    /// The key-wrapping keys a stored signing key may be sealed with,
    /// current first.
    pub fn signing_key_wraps(&self) -> Vec<[u8; 32]> {
        std::iter::once(self.signing_key_wrap)
            .chain(self.previous.as_deref().map(|p| p.signing_key_wrap))
            .collect()
    }
}

/// Parses a 32-byte key given as base64 (standard or url-safe, padding
/// optional) or 64 hex digits.
pub fn parse_master_key(text: &str) -> Result<[u8; 32], CryptoError> {
    let text = text.trim();
    let decoded = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
    } else {
        let unpadded = text.trim_end_matches('=');
        let normalized: String = unpadded
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        URL_SAFE_NO_PAD.decode(normalized).ok()
    };
    let bytes = decoded.ok_or_else(|| {
        CryptoError(
            "AUTH_KEY_ENCRYPTION_KEY must be 32 bytes as base64 or hex (e.g. `openssl rand -base64 32`)"
                .into(),
        )
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        CryptoError(format!(
            "AUTH_KEY_ENCRYPTION_KEY must decode to 32 bytes, got {}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_43_chars_and_distinct() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_aad() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"private key", b"kid-1").unwrap();
        assert_eq!(open(&key, &sealed, b"kid-1").unwrap(), b"private key");
        assert!(open(&key, &sealed, b"kid-2").is_err());
        assert!(open(&[8u8; 32], &sealed, b"kid-1").is_err());
    }

    #[test]
    fn master_key_accepts_base64_and_hex() {
        let key = [0xabu8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(parse_master_key(&b64).unwrap(), key);
        assert_eq!(parse_master_key(&"ab".repeat(32)).unwrap(), key);
        assert!(parse_master_key("short").is_err());
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        let keys = ServerKeys::derive(&[1u8; 32]).unwrap();
        assert_ne!(keys.csrf, keys.signing_key_wrap);
        assert_ne!(keys.csrf, keys.refresh_grace);
    }
}
