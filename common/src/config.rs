//! Where settings come from: built-in defaults, an optional config file, and
//! environment variables, in that order of precedence (later wins).
//!
//! The config file uses the same names as the environment (`AUTH_LISTEN=...`,
//! one per line, `#` comments), so there is one vocabulary for operators. A
//! key the program does not know is an error: a typo must not silently fall
//! back to a default. Every secret setting `X` may also be given as `X_FILE`,
//! a path whose contents are the value (Docker secrets); giving both is an
//! error.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::secret::Secret;

/// A settings problem, reported as one line before the process exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// The names a program accepts: plain settings and secret settings (which
/// also accept `_FILE`).
#[derive(Debug, Clone, Copy)]
pub struct KnownKeys {
    pub plain: &'static [&'static str],
    pub secret: &'static [&'static str],
}

impl KnownKeys {
    fn accepts(&self, key: &str) -> bool {
        self.plain.contains(&key)
            || self.secret.contains(&key)
            || key
                .strip_suffix("_FILE")
                .is_some_and(|base| self.secret.contains(&base))
    }

    fn is_secret(&self, key: &str) -> bool {
        self.secret.contains(&key)
    }
}

/// The merged view of the config file and the environment.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    keys: KnownKeys,
    file: HashMap<String, String>,
    env: HashMap<String, String>,
}

impl ConfigSource {
    /// Builds a source from the process environment and, if `file` is given,
    /// that config file. Environment variables that carry the program's
    /// prefix but are unknown are returned so the caller can warn about them
    /// once logging is up (the environment holds unrelated variables too, so
    /// they are not an error there).
    pub fn from_process(
        keys: KnownKeys,
        prefix: &str,
        file: Option<&Path>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file_values = match file {
            Some(path) => parse_file(path, &keys)?,
            None => HashMap::new(),
        };
        let mut unknown: Vec<String> = env
            .keys()
            .filter(|k| k.starts_with(prefix) && !keys.accepts(k) && !k.ends_with("CONFIG_FILE"))
            .cloned()
            .collect();
        unknown.sort();
        Ok((Self::from_maps(keys, file_values, env), unknown))
    }

    /// Builds a source from explicit maps; tests use this instead of touching
    /// the process environment.
    pub fn from_maps(keys: KnownKeys, file: HashMap<String, String>, env: HashMap<String, String>) -> Self {
        Self { keys, file, env }
    }

    /// Parses config file text (exposed for tests).
    pub fn parse_file_text(text: &str, keys: &KnownKeys) -> Result<HashMap<String, String>, ConfigError> {
        parse_text(text, keys, "config file")
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .or_else(|| self.file.get(key))
            .map(String::as_str)
    }

    /// A plain setting, or `None` when it is unset or empty.
    pub fn string(&self, key: &str) -> Option<String> {
        debug_assert!(
            self.keys.plain.contains(&key),
            "{key} is not a declared plain key"
        );
        self.raw(key).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// A plain setting parsed with `FromStr`, or `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.string(key) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|e| err(format!("{key}: invalid value {text:?}: {e}"))),
        }
    }

    /// A secret setting from `X` or the file named by `X_FILE`.
    pub fn secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        debug_assert!(self.keys.is_secret(key), "{key} is not a declared secret key");
        let file_key = format!("{key}_FILE");
        let direct = self.raw(key).filter(|v| !v.is_empty());
        let path = self.raw(&file_key).filter(|v| !v.is_empty());
        match (direct, path) {
            (Some(_), Some(_)) => Err(err(format!(
                "{key} and {file_key} are both set; set only one of them"
            ))),
            (Some(value), None) => Ok(Some(Secret::new(value))),
            (None, Some(path)) => {
                let contents = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("{file_key}: cannot read {path}: {e}")))?;
                let value = contents.strip_suffix('\n').unwrap_or(&contents);
                let value = value.strip_suffix('\r').unwrap_or(value);
                if value.is_empty() {
                    return Err(err(format!("{file_key}: {path} is empty")));
                }
                Ok(Some(Secret::new(value)))
            }
            (None, None) => Ok(None),
        }
    }
}

fn parse_file(path: &Path, keys: &KnownKeys) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read config file {}: {e}", path.display())))?;
    parse_text(&text, keys, &path.display().to_string())
}

fn parse_text(text: &str, keys: &KnownKeys, origin: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut values = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("{origin}:{line_no}: expected KEY=VALUE")));
        };
        let key = key.trim();
        if !keys.accepts(key) {
            return Err(err(format!("{origin}:{line_no}: unknown setting {key}")));
        }
        let value = unquote(value.trim());
        if values.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(err(format!("{origin}:{line_no}: {key} is set twice")));
        }
    }
    Ok(values)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

/// Checks that an issuer-like URL is `https`, or `http` on a loopback host,
/// and has no query, fragment or credentials. Returns whether it is loopback.
/// actix-web refuses (by panicking) more workers than this.
pub const MAX_WORKERS: usize = 512;

/// `key`: the number of HTTP worker threads; 0 (the default) is one per
/// core. More than [`MAX_WORKERS`] is a clear error, not a panic at start.
pub fn workers(source: &ConfigSource, key: &str) -> Result<Option<usize>, ConfigError> {
    let workers: usize = source.parse_or(key, 0)?;
    if workers > MAX_WORKERS {
        return Err(ConfigError(format!(
            "{key}: at most {MAX_WORKERS} (0 means one per core)"
        )));
    }
    Ok((workers > 0).then_some(workers))
}

/// `key`: seconds a server keeps serving after SIGTERM while its `/readyz`
/// says it is draining (default 5, at most 120), so a load balancer that
/// checks it stops sending before the listener closes.
pub fn drain(source: &ConfigSource, key: &str) -> Result<std::time::Duration, ConfigError> {
    let seconds: u64 = source.parse_or(key, 5)?;
    if seconds > 120 {
        return Err(ConfigError(format!("{key}: at most 120 seconds")));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

pub fn check_public_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| err(format!("{key}: {value:?} is not a URL: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(format!("{key}: must not have a query or fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(format!("{key}: must not contain credentials")));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(err(format!(
            "{key}: {value} must use https (http is allowed only on a loopback host)"
        ))),
        other => Err(err(format!("{key}: unsupported scheme {other}"))),
    }
}

/// Whether the URL's host is a loopback name or address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: KnownKeys = KnownKeys {
        plain: &["APP_LISTEN", "APP_TTL"],
        secret: &["APP_DATABASE_URL"],
    };

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_overrides_file_and_file_overrides_default() {
        let source = ConfigSource::from_maps(
            KEYS,
            map(&[("APP_LISTEN", "127.0.0.1:1"), ("APP_TTL", "5")]),
            map(&[("APP_TTL", "7")]),
        );
        assert_eq!(source.string("APP_LISTEN").as_deref(), Some("127.0.0.1:1"));
        assert_eq!(source.parse_or("APP_TTL", 1u32), Ok(7));
        let empty = ConfigSource::from_maps(KEYS, HashMap::new(), HashMap::new());
        assert_eq!(empty.parse_or("APP_TTL", 1u32), Ok(1));
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let e = ConfigSource::parse_file_text("APP_LISTEN=x\nAPP_TYPO=1\n", &KEYS).unwrap_err();
        assert!(e.0.contains("unknown setting APP_TYPO"), "{e}");
    }

    #[test]
    fn file_accepts_comments_quotes_and_secret_file_keys() {
        let values = ConfigSource::parse_file_text(
            "# comment\n\nAPP_LISTEN = \"0.0.0.0:1\"\nAPP_DATABASE_URL_FILE=/run/secrets/db\n",
            &KEYS,
        )
        .unwrap();
        assert_eq!(values["APP_LISTEN"], "0.0.0.0:1");
        assert_eq!(values["APP_DATABASE_URL_FILE"], "/run/secrets/db");
    }

    #[test]
    fn secret_comes_from_file_variant() {
        let dir = std::env::temp_dir().join(format!("cfg-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        std::fs::write(&path, "postgres://secret@host/db\n").unwrap();
        let source = ConfigSource::from_maps(
            KEYS,
            HashMap::new(),
            map(&[("APP_DATABASE_URL_FILE", path.to_str().unwrap())]),
        );
        let secret = source.secret("APP_DATABASE_URL").unwrap().unwrap();
        assert_eq!(secret.expose(), "postgres://secret@host/db");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secret_and_its_file_variant_together_is_an_error() {
        let source = ConfigSource::from_maps(
            KEYS,
            map(&[("APP_DATABASE_URL_FILE", "/nope")]),
            map(&[("APP_DATABASE_URL", "postgres://x")]),
        );
        let e = source.secret("APP_DATABASE_URL").unwrap_err();
        assert!(e.0.contains("both set"), "{e}");
    }

    #[test]
    fn bad_number_names_the_key() {
        let source = ConfigSource::from_maps(KEYS, HashMap::new(), map(&[("APP_TTL", "ten")]));
        let e = source.parse_or("APP_TTL", 1u32).unwrap_err();
        assert!(e.0.starts_with("APP_TTL"), "{e}");
    }

    #[test]
    fn http_issuer_only_on_loopback() {
        assert!(check_public_url("I", "http://127.0.0.1:8080").is_ok());
        assert!(check_public_url("I", "http://localhost:8080").is_ok());
        assert!(check_public_url("I", "http://[::1]:8080").is_ok());
        assert!(check_public_url("I", "https://auth.example.com").is_ok());
        assert!(check_public_url("I", "http://auth.example.com").is_err());
        assert!(check_public_url("I", "http://10.0.0.1").is_err());
        assert!(check_public_url("I", "https://a.example.com/?x=1").is_err());
        assert!(check_public_url("I", "https://u:p@a.example.com").is_err());
    }
}
