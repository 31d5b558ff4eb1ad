//! The resource server's typed settings (names from `INTERFACE.md`), built
//! once at start-up from defaults, an optional config file
//! (`RESOURCE_CONFIG_FILE` or `--config`) and the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oauth_common::Secret;
use oauth_common::config::{ConfigError, ConfigSource, KnownKeys, check_public_url};
use oauth_common::telemetry::LogFormat;

pub const KEYS: KnownKeys = KnownKeys {
    plain: &[
        "RESOURCE_LISTEN",
        "RESOURCE_ISSUER",
        "RESOURCE_AUDIENCE",
        "RESOURCE_ADMIN_LISTEN",
        "RESOURCE_CORS_ORIGINS",
        "RESOURCE_LEEWAY_SECONDS",
        "RESOURCE_MAX_TOKEN_LIFETIME",
        "RESOURCE_DATABASE_POOL_SIZE",
        "RESOURCE_WORKERS",
        "RESOURCE_LOG_FORMAT",
        "RESOURCE_DRAIN_SECONDS",
        "RESOURCE_EVENTS_CLIENT_ID",
        "RESOURCE_EVENTS_MAX_STALENESS",
    ],
    secret: &["RESOURCE_DATABASE_URL", "RESOURCE_EVENTS_CLIENT_SECRET"],
};

/// How the resource server follows the issuer's revocation feed.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    /// A confidential client registered with `--allow-events`.
    pub client_id: String,
    pub client_secret: Secret,
    /// How long the feed may go unread before `/healthz` says so.
    pub max_staleness: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Secret,
    pub listen: String,
    pub admin_listen: String,
    /// The issuer we trust, compared with `iss` exactly.
    pub issuer: String,
    /// The `aud` value tokens must carry; also our RFC 9728 resource id.
    pub audience: String,
    /// Browser origins allowed to call `/api`.
    pub cors_origins: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The longest access-token lifetime (`exp - iat`) accepted.
    pub max_token_lifetime: Duration,
    pub pool_size: u32,
    pub workers: Option<usize>,
    /// How long the server drains after SIGTERM before it stops accepting.
    pub drain: std::time::Duration,
    pub log_format: LogFormat,
    /// `None`: the feed is off and tokens are refused only when they expire.
    pub events: Option<EventsSettings>,
}

fn parse_origin(value: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError(format!("RESOURCE_CORS_ORIGINS: {value:?} is not an origin: {e}")))?;
    let origin = url.origin().ascii_serialization();
    if origin == "null" || !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(ConfigError(format!(
            "RESOURCE_CORS_ORIGINS: {value:?} must be scheme://host[:port]"
        )));
    }
    Ok(origin)
}

impl Settings {
    pub fn load(config_file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let env_file = std::env::var_os("RESOURCE_CONFIG_FILE").map(PathBuf::from);
        let file = config_file.map(Path::to_path_buf).or(env_file);
        let (source, unknown) = ConfigSource::from_process(KEYS, "RESOURCE_", file.as_deref())?;
        Ok((Self::from_source(&source)?, unknown))
    }

    pub fn from_source(source: &ConfigSource) -> Result<Self, ConfigError> {
        let issuer = source
            .string("RESOURCE_ISSUER")
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        check_public_url("RESOURCE_ISSUER", &issuer)?;
        let audience = source
            .string("RESOURCE_AUDIENCE")
            .unwrap_or_else(|| "http://127.0.0.1:8081/api".to_owned());
        check_public_url("RESOURCE_AUDIENCE", &audience)?;
        let cors_origins = source
            .string("RESOURCE_CORS_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(parse_origin)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let leeway: u64 = source.parse_or(
            "RESOURCE_LEEWAY_SECONDS",
            oauth_common::jwt::DEFAULT_LEEWAY.as_secs(),
        )?;
        if leeway > 300 {
            return Err(ConfigError("RESOURCE_LEEWAY_SECONDS: at most 300".into()));
        }
        let max_token_lifetime: u64 = source.parse_or("RESOURCE_MAX_TOKEN_LIFETIME", 86_400)?;
        if max_token_lifetime == 0 {
            return Err(ConfigError(
                "RESOURCE_MAX_TOKEN_LIFETIME: must be at least 1".into(),
            ));
        }
        let pool_size: u32 = source.parse_or("RESOURCE_DATABASE_POOL_SIZE", 16)?;
        if pool_size == 0 {
            return Err(ConfigError(
                "RESOURCE_DATABASE_POOL_SIZE: must be at least 1".into(),
            ));
        }
        let workers = oauth_common::config::workers(source, "RESOURCE_WORKERS")?;
        let events = match (
            source.string("RESOURCE_EVENTS_CLIENT_ID"),
            source.secret("RESOURCE_EVENTS_CLIENT_SECRET")?,
        ) {
            (None, None) => None,
            (Some(client_id), Some(client_secret)) => {
                // Twice the default access-token lifetime.
                let stale: u64 = source.parse_or("RESOURCE_EVENTS_MAX_STALENESS", 1200)?;
                if stale == 0 {
                    return Err(ConfigError(
                        "RESOURCE_EVENTS_MAX_STALENESS: must be at least 1".into(),
                    ));
                }
                Some(EventsSettings {
                    client_id,
                    client_secret,
                    max_staleness: Duration::from_secs(stale),
                })
            }
            (Some(_), None) => {
                return Err(ConfigError(
                    "RESOURCE_EVENTS_CLIENT_ID is set but RESOURCE_EVENTS_CLIENT_SECRET (or _FILE) is not"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "RESOURCE_EVENTS_CLIENT_SECRET is set but RESOURCE_EVENTS_CLIENT_ID is not".into(),
                ));
            }
        };
        Ok(Self {
            database_url: source
                .secret("RESOURCE_DATABASE_URL")?
                .unwrap_or_else(|| Secret::new("postgres://localhost/oauth_resource")),
            listen: source
                .string("RESOURCE_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:8081".to_owned()),
            admin_listen: source
                .string("RESOURCE_ADMIN_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:9081".to_owned()),
            issuer,
            audience,
            cors_origins,
            leeway: Duration::from_secs(leeway),
            max_token_lifetime: Duration::from_secs(max_token_lifetime),
            pool_size,
            workers,
            drain: oauth_common::config::drain(source, "RESOURCE_DRAIN_SECONDS")?,
            log_format: source.parse_or("RESOURCE_LOG_FORMAT", LogFormat::Auto)?,
            events,
        })
    }

    /// `scheme://host[:port]` of the audience: where this server is reached.
    pub fn public_origin(&self) -> String {
        url::Url::parse(&self.audience)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// RFC 9728 section 3.1: the metadata URL for our resource identifier.
    pub fn resource_metadata_url(&self) -> String {
        let path = url::Url::parse(&self.audience)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!(
            "{}/.well-known/oauth-protected-resource{path}",
            self.public_origin()
        )
    }
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
        let e = settings(&[("RESOURCE_WORKERS", "513")]).unwrap_err();
        assert!(e.0.contains("RESOURCE_WORKERS: at most 512"), "{e}");
        assert_eq!(
            settings(&[("RESOURCE_WORKERS", "512")]).unwrap().workers,
            Some(512)
        );
        assert_eq!(settings(&[("RESOURCE_WORKERS", "0")]).unwrap().workers, None);
    }

    #[test]
    fn defaults_match_the_interface() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url.expose(), "postgres://localhost/oauth_resource");
        assert_eq!(s.listen, "127.0.0.1:8081");
        assert_eq!(s.admin_listen, "127.0.0.1:9081");
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.audience, "http://127.0.0.1:8081/api");
        assert!(s.cors_origins.is_empty());
        assert_eq!(s.leeway, Duration::from_secs(30));
        assert_eq!(
            s.resource_metadata_url(),
            "http://127.0.0.1:8081/.well-known/oauth-protected-resource/api"
        );
    }

    #[test]
    fn cors_origins_are_parsed() {
        let s = settings(&[(
            "RESOURCE_CORS_ORIGINS",
            "http://127.0.0.1:5173, https://app.example.com",
        )])
        .unwrap();
        assert_eq!(
            s.cors_origins,
            ["http://127.0.0.1:5173", "https://app.example.com"]
        );
        assert!(settings(&[("RESOURCE_CORS_ORIGINS", "https://app.example.com/path")]).is_err());
    }

    #[test]
    fn http_issuer_must_be_loopback() {
        assert!(settings(&[("RESOURCE_ISSUER", "http://auth.example.com")]).is_err());
        assert!(settings(&[("RESOURCE_ISSUER", "https://auth.example.com")]).is_ok());
    }
}
