use std::fmt;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use super::username::Username;

/// A new password that passed the policy (ASVS V6.2): 12-128 characters and
/// not guessable, judged by zxcvbn with the username as context. `Debug`
/// never shows it.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(input: &str, username: &Username) -> Result<Self, String> {
        let chars = input.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!(
                "password must be at least {} characters",
                Self::MIN_CHARS
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("password must be at most {} characters", Self::MAX_CHARS));
        }
        let estimate = zxcvbn::zxcvbn(input, &[username.as_str()]);
        if u8::from(estimate.score()) < 3 {
            return Err("password is too easy to guess; use a longer passphrase".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// An Argon2id hash in PHC string form.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Result<Argon2<'static>, String> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

impl PasswordHash {
    /// Hashes with a fresh random salt. Slow on purpose (~20 ms): call it on
    /// the blocking pool.
    pub fn create(password: &Password) -> Result<Self, String> {
        let hash = hasher()?
            .hash_password(password.expose().as_bytes())
            .map_err(|e| format!("cannot hash password: {e}"))?;
        Ok(Self(hash.to_string()))
    }

    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Like [`PasswordHash::verify`], but works in `memory` (grown as
    /// needed and kept by the caller), so a thread that verifies many
    /// passwords reuses one 19 MiB buffer instead of allocating one each
    /// time. Refuses parameters above 256 MiB of memory.
    pub fn verify_in(&self, candidate: &str, memory: &mut Vec<argon2::Block>) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(&self.0) else {
            return false;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return false;
        }
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let needed = params.block_count();
        if needed > 256 * 1024 {
            return false;
        }
        if memory.len() < needed {
            memory.resize(needed, argon2::Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        let hashed = Argon2::new(Algorithm::Argon2id, version, params).hash_password_into_with_memory(
            candidate.as_bytes(),
            salt.as_ref(),
            &mut out,
            &mut memory[..needed],
        );
        hashed.is_ok() && crate::crypto::ct_eq(&out, expected.as_bytes())
    }

    /// Whether `candidate` matches. Uses the parameters stored in the hash,
    /// so hashes made with stronger settings keep verifying after the
    /// defaults change.
    pub fn verify(&self, candidate: &str) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(&self.0) else {
            return false;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return false;
        }
        Argon2::default()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    #[test]
    fn short_long_and_guessable_passwords_are_refused() {
        assert!(Password::parse("short", &alice()).is_err());
        assert!(Password::parse(&"x".repeat(129), &alice()).is_err());
        assert!(Password::parse("password1234", &alice()).is_err());
        assert!(Password::parse("alice1234567", &alice()).is_err());
        assert!(Password::parse("correct horse battery staple", &alice()).is_ok());
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let pw = Password::parse("correct horse battery staple", &alice()).unwrap();
        let hash = PasswordHash::create(&pw).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hash.verify("correct horse battery staple"));
        assert!(!hash.verify("correct horse battery stapl"));
    }

    #[test]
    fn stronger_stored_parameters_still_verify() {
        let params = Params::new(32_768, 3, 1, None).unwrap();
        let strong = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery staple")
            .unwrap()
            .to_string();
        assert!(strong.contains("m=32768,t=3"));
        assert!(PasswordHash::from_stored(strong).verify("correct horse battery staple"));
    }

    #[test]
    fn verifying_in_reused_memory_agrees_with_the_plain_check() {
        let pw = Password::parse("correct horse battery staple", &alice()).unwrap();
        let hash = PasswordHash::create(&pw).unwrap();
        let mut memory = Vec::new();
        assert!(hash.verify_in("correct horse battery staple", &mut memory));
        assert!(!hash.verify_in("correct horse battery stapl", &mut memory));
        assert_eq!(memory.len(), 19_456);
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32_768, 3, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery staple")
        .unwrap()
        .to_string();
        assert!(PasswordHash::from_stored(strong).verify_in("correct horse battery staple", &mut memory));
        assert!(
            !PasswordHash::from_stored("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into())
                .verify_in("x", &mut memory)
        );
    }

    #[test]
    fn debug_does_not_show_the_password() {
        let pw = Password::parse("correct horse battery staple", &alice()).unwrap();
        assert!(!format!("{pw:?}").contains("horse"));
    }
}
