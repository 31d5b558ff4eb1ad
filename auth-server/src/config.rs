//! The auth-server's typed settings, built once at start-up from defaults,
//! an optional config file (`AUTH_CONFIG_FILE` or `--config`) and the
//! environment. Names are the ones `INTERFACE.md` fixes; the extra knobs
//! below are documented in `docs/configuration.md`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use oauth_common::Secret;
use oauth_common::config::{ConfigError, ConfigSource, KnownKeys, check_public_url, is_loopback};
use oauth_common::telemetry::LogFormat;

pub const KEYS: KnownKeys = KnownKeys {
    plain: &[
        "AUTH_LISTEN",
        "AUTH_ISSUER",
        "AUTH_ADMIN_LISTEN",
        "AUTH_ACCESS_TOKEN_TTL",
        "AUTH_REFRESH_TOKEN_TTL",
        "AUTH_REFRESH_TOKEN_ABSOLUTE_TTL",
        "AUTH_REFRESH_GRACE_SECONDS",
        "AUTH_KEY_ACTIVATION_DELAY",
        "AUTH_SESSION_IDLE_TTL",
        "AUTH_SESSION_ABSOLUTE_TTL",
        "AUTH_DATABASE_POOL_SIZE",
        "AUTH_WORKERS",
        "AUTH_LOG_FORMAT",
        "AUTH_DEV_KEY_FILE",
        "AUTH_CLEANUP_INTERVAL",
        "AUTH_DEFAULT_AUDIENCE",
        "AUTH_KEY_RELOAD_INTERVAL",
        "AUTH_TRUSTED_PROXIES",
        "AUTH_BREACHED_PASSWORDS_URL",
        "AUTH_BREACHED_PASSWORDS_FILE",
        "AUTH_BREACHED_PASSWORDS_FAIL",
        "AUTH_IP_FAILURE_LIMIT",
        "AUTH_CLIENT_FAILURE_LIMIT",
        "AUTH_FAILURE_WINDOW",
        "AUTH_REQUEST_RATE_PER_IP",
        "AUTH_KEY_ROTATION_INTERVAL",
        "AUTH_DRAIN_SECONDS",
    ],
    secret: &[
        "AUTH_DATABASE_URL",
        "AUTH_KEY_ENCRYPTION_KEY",
        "AUTH_KEY_ENCRYPTION_KEY_PREVIOUS",
    ],
};

/// Everything the server needs to know, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Secret,
    pub listen: String,
    pub admin_listen: String,
    pub issuer: Issuer,
    pub access_token_ttl: Duration,
    /// Idle lifetime of a refresh token: each rotation starts it again.
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a refresh-token family, after which the user
    /// must log in again.
    pub refresh_family_ttl: Duration,
    /// How long the exact previous refresh token may be replayed by the same
    /// client to receive the same successor (see `docs/tokens.md`).
    pub refresh_grace: Duration,
    /// How long a new signing key is published before it signs.
    pub key_activation_delay: Duration,
    pub session_idle_ttl: Duration,
    pub session_absolute_ttl: Duration,
    pub key_encryption_key: KeyEncryptionKeySource,
    /// The KEK being retired (`keys rewrap`): signing keys still sealed
    /// with it are opened with it.
    pub key_encryption_key_previous: Option<Secret>,
    /// Time between scheduled signing-key rotations; `None` when off.
    pub key_rotation_interval: Option<Duration>,
    pub pool_size: u32,
    pub workers: Option<usize>,
    /// How long the server drains after SIGTERM before it stops accepting.
    pub drain: std::time::Duration,
    pub log_format: LogFormat,
    pub cleanup_interval: Duration,
    /// `aud` for clients registered without `--audience`.
    pub default_audience: String,
    /// How often each instance reloads signing keys and the CORS allow-list
    /// from the database.
    pub key_reload_interval: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub limits: LimitSettings,
    pub breached_passwords: crate::breached::BreachedPasswords,
}

impl Settings {
    /// The JWKS `max-age`: well under the activation delay, so a
    /// pre-published key reaches every verifier's cache before it signs.
    pub fn jwks_max_age(&self) -> Duration {
        (self.key_activation_delay / 3).min(Duration::from_secs(300))
    }
}

fn non_zero(source: &ConfigSource, key: &str, default: u32) -> Result<std::num::NonZeroU32, ConfigError> {
    std::num::NonZeroU32::new(source.parse_or(key, default)?)
        .ok_or_else(|| ConfigError(format!("{key}: must be at least 1")))
}

/// Where the key that encrypts signing keys at rest comes from.
#[derive(Debug, Clone)]
pub enum KeyEncryptionKeySource {
    Configured(Secret),
    /// Loopback issuers only: a development key kept in a git-ignored file.
    DevelopmentFile(PathBuf),
}

/// The public issuer identifier, exactly as configured (it is compared as a
/// string by clients and resource servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    value: String,
    https: bool,
}

impl Issuer {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let url = check_public_url("AUTH_ISSUER", value)?;
        if url.path() != "/" {
            return Err(ConfigError(
                "AUTH_ISSUER: must be the server's root (no path); the endpoints live directly under it"
                    .into(),
            ));
        }
        Ok(Self {
            value: value.to_owned(),
            https: url.scheme() == "https",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// An absolute URL for a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.value.trim_end_matches('/'), path)
    }
}

const DAY: u64 = 86_400;

fn seconds(
    source: &ConfigSource,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let value: u64 = source.parse_or(key, default)?;
    if !range.contains(&value) {
        return Err(ConfigError(format!(
            "{key}: must be from {} to {} seconds",
            range.start(),
            range.end()
        )));
    }
    Ok(Duration::from_secs(value))
}

/// The range API's base URL: absolute, `https` unless the host is
/// loopback.
fn check_breached_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| e.to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => return Err("must be an https URL (http only for a loopback host)".into()),
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl Settings {
    /// Reads the process environment and the optional config file.
    pub fn load(config_file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let env_file = std::env::var_os("AUTH_CONFIG_FILE").map(PathBuf::from);
        let file = config_file.map(Path::to_path_buf).or(env_file);
        let (source, unknown) = ConfigSource::from_process(KEYS, "AUTH_", file.as_deref())?;
        Ok((Self::from_source(&source)?, unknown))
    }

    pub fn from_source(source: &ConfigSource) -> Result<Self, ConfigError> {
        let database_url = source
            .secret("AUTH_DATABASE_URL")?
            .unwrap_or_else(|| Secret::new("postgres://localhost/oauth_auth"));
        let issuer = Issuer::parse(
            &source
                .string("AUTH_ISSUER")
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
        )?;
        let key_encryption_key = match source.secret("AUTH_KEY_ENCRYPTION_KEY")? {
            Some(key) => KeyEncryptionKeySource::Configured(key),
            None => {
                let url =
                    url::Url::parse(issuer.as_str()).map_err(|e| ConfigError(format!("AUTH_ISSUER: {e}")))?;
                if !is_loopback(&url) {
                    return Err(ConfigError(
                        "AUTH_KEY_ENCRYPTION_KEY is required when the issuer is not a loopback address"
                            .into(),
                    ));
                }
                KeyEncryptionKeySource::DevelopmentFile(PathBuf::from(
                    source
                        .string("AUTH_DEV_KEY_FILE")
                        .unwrap_or_else(|| ".local/auth-server-dev.key".to_owned()),
                ))
            }
        };
        let access_token_ttl = seconds(source, "AUTH_ACCESS_TOKEN_TTL", 600, 1..=DAY)?;
        let refresh_token_ttl = seconds(source, "AUTH_REFRESH_TOKEN_TTL", 1_209_600, 1..=365 * DAY)?;
        let refresh_family_ttl = seconds(
            source,
            "AUTH_REFRESH_TOKEN_ABSOLUTE_TTL",
            2_592_000,
            1..=365 * DAY,
        )?;
        if refresh_family_ttl < refresh_token_ttl {
            return Err(ConfigError(
                "AUTH_REFRESH_TOKEN_ABSOLUTE_TTL must not be shorter than AUTH_REFRESH_TOKEN_TTL".into(),
            ));
        }
        let refresh_grace = seconds(source, "AUTH_REFRESH_GRACE_SECONDS", 2, 0..=60)?;
        let key_activation_delay = seconds(source, "AUTH_KEY_ACTIVATION_DELAY", 900, 0..=7 * DAY)?;
        let key_rotation_interval = match seconds(
            source,
            "AUTH_KEY_ROTATION_INTERVAL",
            30 * DAY,
            0..=365 * DAY,
        )? {
            Duration::ZERO => None,
            every if every < Duration::from_secs(3600) || every <= key_activation_delay => {
                return Err(ConfigError(
                    "AUTH_KEY_ROTATION_INTERVAL: must be 0 (off) or at least 3600 and longer than AUTH_KEY_ACTIVATION_DELAY"
                        .into(),
                ));
            }
            every => Some(every),
        };
        let workers = oauth_common::config::workers(source, "AUTH_WORKERS")?;
        let pool_size: u32 = source.parse_or("AUTH_DATABASE_POOL_SIZE", 16)?;
        if pool_size == 0 {
            return Err(ConfigError("AUTH_DATABASE_POOL_SIZE: must be at least 1".into()));
        }
        Ok(Self {
            database_url,
            listen: source
                .string("AUTH_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            admin_listen: source
                .string("AUTH_ADMIN_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:9080".to_owned()),
            issuer,
            access_token_ttl,
            refresh_token_ttl,
            refresh_family_ttl,
            refresh_grace,
            key_activation_delay,
            key_rotation_interval,
            session_idle_ttl: seconds(source, "AUTH_SESSION_IDLE_TTL", 3600, 60..=30 * DAY)?,
            session_absolute_ttl: seconds(source, "AUTH_SESSION_ABSOLUTE_TTL", 43_200, 60..=30 * DAY)?,
            key_encryption_key,
            key_encryption_key_previous: source.secret("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS")?,
            pool_size,
            workers,
            drain: oauth_common::config::drain(source, "AUTH_DRAIN_SECONDS")?,
            log_format: source.parse_or("AUTH_LOG_FORMAT", LogFormat::Auto)?,
            cleanup_interval: seconds(source, "AUTH_CLEANUP_INTERVAL", 60, 1..=DAY)?,
            default_audience: source
                .string("AUTH_DEFAULT_AUDIENCE")
                .unwrap_or_else(|| "http://127.0.0.1:8081/api".to_owned()),
            key_reload_interval: seconds(source, "AUTH_KEY_RELOAD_INTERVAL", 30, 1..=60)?,
            trusted_proxies: parse_trusted(&source.string("AUTH_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| ConfigError(format!("AUTH_TRUSTED_PROXIES: {e}")))?,
            limits: LimitSettings {
                ip_failures: non_zero(source, "AUTH_IP_FAILURE_LIMIT", 20)?,
                client_failures: non_zero(source, "AUTH_CLIENT_FAILURE_LIMIT", 100)?,
                window: seconds(source, "AUTH_FAILURE_WINDOW", 60, 1..=DAY)?,
                requests_per_ip: std::num::NonZeroU32::new(source.parse_or("AUTH_REQUEST_RATE_PER_IP", 0)?),
            },
            breached_passwords: crate::breached::BreachedPasswords {
                range_url: match source
                    .string("AUTH_BREACHED_PASSWORDS_URL")
                    .filter(|u| !u.is_empty())
                {
                    None => None,
                    Some(url) => Some(
                        check_breached_url(&url)
                            .map_err(|e| ConfigError(format!("AUTH_BREACHED_PASSWORDS_URL: {e}")))?,
                    ),
                },
                file: source
                    .string("AUTH_BREACHED_PASSWORDS_FILE")
                    .filter(|f| !f.is_empty())
                    .map(PathBuf::from),
                fail: source
                    .string("AUTH_BREACHED_PASSWORDS_FAIL")
                    .map_or(Ok(crate::breached::FailMode::Open), |v| v.parse())
                    .map_err(|e| ConfigError(format!("AUTH_BREACHED_PASSWORDS_FAIL: {e}")))?,
            },
        })
    }
}

/// The failure and request limits' settings (`limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Failures per address in `window` before requests are refused.
    pub ip_failures: std::num::NonZeroU32,
    /// Failures per client (by `client_id`) in `window`.
    pub client_failures: std::num::NonZeroU32,
    pub window: std::time::Duration,
    /// Requests per second per address at the JSON endpoints; `None`: off.
    pub requests_per_ip: Option<std::num::NonZeroU32>,
}

/// Parses `AUTH_TRUSTED_PROXIES`: comma-separated IPs or CIDRs.
pub fn parse_trusted(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not an IP address or CIDR"))
                .and_then(|net| {
                    // A prefix this wide trusts the whole internet to name
                    // its own address.
                    let widest = if net.addr().is_ipv4() { 8 } else { 32 };
                    if net.prefix_len() < widest {
                        Err(format!("{entry:?} is too wide to be a set of proxies"))
                    } else {
                        Ok(net)
                    }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_source(&ConfigSource::from_maps(KEYS, HashMap::new(), env))
    }

    #[test]
    fn more_workers_than_actix_allows_is_a_clear_error() {
        let e = settings(&[("AUTH_WORKERS", "513")]).unwrap_err();
        assert!(e.0.contains("AUTH_WORKERS: at most 512"), "{e}");
        assert_eq!(settings(&[("AUTH_WORKERS", "512")]).unwrap().workers, Some(512));
        assert_eq!(settings(&[("AUTH_WORKERS", "0")]).unwrap().workers, None);
    }

    #[test]
    fn defaults_match_the_interface() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url.expose(), "postgres://localhost/oauth_auth");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.admin_listen, "127.0.0.1:9080");
        assert_eq!(s.issuer.as_str(), "http://127.0.0.1:8080");
        assert_eq!(s.access_token_ttl, Duration::from_secs(600));
        assert_eq!(s.refresh_token_ttl, Duration::from_secs(1_209_600));
        assert_eq!(s.refresh_grace, Duration::from_secs(2));
        assert!(matches!(
            s.key_encryption_key,
            KeyEncryptionKeySource::DevelopmentFile(_)
        ));
    }

    #[test]
    fn environment_overrides_defaults() {
        let s = settings(&[
            ("AUTH_ACCESS_TOKEN_TTL", "60"),
            ("AUTH_ISSUER", "https://id.example.com"),
            ("AUTH_KEY_ENCRYPTION_KEY", "k"),
        ])
        .unwrap();
        assert_eq!(s.access_token_ttl, Duration::from_secs(60));
        assert!(s.issuer.is_https());
        assert_eq!(s.issuer.url("/token"), "https://id.example.com/token");
    }

    #[test]
    fn http_issuer_on_a_public_host_is_refused() {
        let e = settings(&[("AUTH_ISSUER", "http://id.example.com")]).unwrap_err();
        assert!(e.0.contains("https"), "{e}");
    }

    #[test]
    fn https_issuer_requires_a_key_encryption_key() {
        let e = settings(&[("AUTH_ISSUER", "https://id.example.com")]).unwrap_err();
        assert!(e.0.contains("AUTH_KEY_ENCRYPTION_KEY"), "{e}");
    }

    #[test]
    fn issuer_with_a_path_is_refused() {
        assert!(settings(&[("AUTH_ISSUER", "http://127.0.0.1:8080/auth")]).is_err());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let s = settings(&[("AUTH_DATABASE_URL", "postgres://u:pw-123@db/x")]).unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("pw-123"), "{text}");
    }

    #[test]
    fn hardening_settings_parse_and_bad_values_are_refused() {
        let s = settings(&[
            ("AUTH_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("AUTH_BREACHED_PASSWORDS_URL", "https://api.pwnedpasswords.com/"),
            ("AUTH_BREACHED_PASSWORDS_FAIL", "closed"),
        ])
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(
            s.breached_passwords.range_url.as_deref(),
            Some("https://api.pwnedpasswords.com")
        );
        assert_eq!(s.breached_passwords.fail, crate::breached::FailMode::Closed);
        assert_eq!(
            settings(&[]).unwrap().breached_passwords.fail,
            crate::breached::FailMode::Open
        );
        assert!(settings(&[("AUTH_TRUSTED_PROXIES", "proxy.local")]).is_err());
        assert!(settings(&[("AUTH_BREACHED_PASSWORDS_URL", "http://range.example")]).is_err());
        assert!(settings(&[("AUTH_BREACHED_PASSWORDS_FAIL", "maybe")]).is_err());
        assert!(settings(&[("AUTH_IP_FAILURE_LIMIT", "0")]).is_err());
    }

    #[test]
    fn bad_grace_window_is_refused() {
        assert!(settings(&[("AUTH_REFRESH_GRACE_SECONDS", "3600")]).is_err());
    }
}
