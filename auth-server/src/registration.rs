//! Client registration: turns what an operator typed into a checked
//! [`Client`] and, for confidential clients, a new secret that is shown once
//! and stored only as a SHA-256 digest.

use std::collections::BTreeSet;

use crate::crypto::{self, CryptoError};
use crate::domain::{ClientKind, GrantType, RedirectUri, Scope, ScopeSet};
use crate::model::Client;

/// What `auth-server client create` was given.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistration {
    pub name: String,
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub allow_introspection: bool,
    pub backchannel_logout_uri: Option<String>,
    pub require_nonce: bool,
    pub allow_events: bool,
}

/// A client ready to store, and its secret if it has one.
pub struct NewClient {
    pub client: Client,
    pub secret: Option<String>,
}

#[derive(Debug)]
pub enum RegistrationError {
    Invalid(String),
    Crypto(CryptoError),
}

impl std::fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistrationError::Invalid(m) => f.write_str(m),
            RegistrationError::Crypto(e) => write!(f, "cannot generate credentials: {e}"),
        }
    }
}

fn invalid(message: impl Into<String>) -> RegistrationError {
    RegistrationError::Invalid(message.into())
}

fn dedup<T: Ord + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|i| seen.insert(i.clone())).collect()
}

impl ClientRegistration {
    /// Checks the registration. Defaults: grant types `authorization_code`
    /// and `refresh_token` when redirect URIs are given, otherwise
    /// `client_credentials` (confidential clients only); scopes
    /// `openid profile notes:read notes:write` (`admin` only when asked for);
    /// audience `default_audience`.
    pub fn check(self, default_audience: &str) -> Result<NewClient, RegistrationError> {
        let mut client = self.validated(default_audience)?;
        client.client_id = crypto::b64url(&crypto::random_bytes::<16>().map_err(RegistrationError::Crypto)?);
        let secret = match client.kind {
            ClientKind::Confidential => {
                let secret = crypto::random_token().map_err(RegistrationError::Crypto)?;
                client.secret_hash = Some(crypto::token_hash(&secret));
                Some(secret)
            }
            ClientKind::Public => None,
        };
        Ok(NewClient { client, secret })
    }

    /// The registration of an existing client, to change (`client update`).
    pub fn of(client: &Client) -> Self {
        let uris = |list: &[RedirectUri]| list.iter().map(|u| u.as_str().to_owned()).collect();
        Self {
            name: client.name.clone(),
            confidential: client.kind == ClientKind::Confidential,
            redirect_uris: uris(&client.redirect_uris),
            post_logout_redirect_uris: uris(&client.post_logout_redirect_uris),
            grant_types: client.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: client.scopes.to_strings(),
            audiences: client.audiences.clone(),
            first_party: client.first_party,
            allow_introspection: client.allow_introspection,
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            require_nonce: client.require_nonce,
            allow_events: client.allow_events,
        }
    }

    /// `existing` with this registration, checked exactly as at create; the
    /// id, type and secrets stay. Lists may not be emptied (at create an
    /// empty list means the default, which an update would not expect).
    pub fn recheck(self, existing: &Client) -> Result<Client, RegistrationError> {
        for (list, what) in [
            (&self.grant_types, "grant type"),
            (&self.scopes, "scope"),
            (&self.audiences, "audience"),
        ] {
            // A feed reader may have no grant at all.
            if list.is_empty() && !(what == "grant type" && self.allow_events) {
                return Err(invalid(format!("a client keeps at least one {what}")));
            }
        }
        if self.confidential != (existing.kind == ClientKind::Confidential) {
            return Err(invalid("a client's type cannot change; register a new client"));
        }
        let mut client = self.validated("")?;
        client.client_id.clone_from(&existing.client_id);
        client.secret_hash.clone_from(&existing.secret_hash);
        client.previous_secret.clone_from(&existing.previous_secret);
        Ok(client)
    }

    /// Every rule of registration; the id and secret are left empty.
    fn validated(self, default_audience: &str) -> Result<Client, RegistrationError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(invalid("client name must be 1-200 printable characters"));
        }
        let kind = if self.confidential {
            ClientKind::Confidential
        } else {
            ClientKind::Public
        };
        let parse_uris = |list: &[String]| -> Result<Vec<RedirectUri>, RegistrationError> {
            list.iter()
                .map(|u| RedirectUri::parse(u).map_err(RegistrationError::Invalid))
                .collect::<Result<Vec<_>, _>>()
                .map(dedup_uris)
        };
        let redirect_uris = parse_uris(&self.redirect_uris)?;
        let post_logout_redirect_uris = parse_uris(&self.post_logout_redirect_uris)?;

        let grant_types: BTreeSet<GrantType> = if self.grant_types.is_empty() {
            if !redirect_uris.is_empty() {
                [GrantType::AuthorizationCode, GrantType::RefreshToken].into()
            } else if self.allow_events {
                // A resource server reading the revocation feed needs no
                // tokens: a leaked feed secret mints none.
                BTreeSet::new()
            } else if kind == ClientKind::Confidential {
                [GrantType::ClientCredentials].into()
            } else {
                return Err(invalid("a public client needs at least one --redirect-uri"));
            }
        } else {
            self.grant_types
                .iter()
                .map(|g| GrantType::parse(g).map_err(RegistrationError::Invalid))
                .collect::<Result<_, _>>()?
        };
        if kind == ClientKind::Public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(invalid("client_credentials needs a confidential client"));
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(invalid("authorization_code needs at least one --redirect-uri"));
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types.contains(&GrantType::AuthorizationCode)
        {
            return Err(invalid("refresh_token is only issued with authorization_code"));
        }
        if !grant_types.contains(&GrantType::AuthorizationCode) && !redirect_uris.is_empty() {
            return Err(invalid(
                "--redirect-uri is only used with the authorization_code grant",
            ));
        }
        if self.allow_introspection && kind == ClientKind::Public {
            return Err(invalid("--allow-introspection needs a confidential client"));
        }
        if self.allow_events && kind == ClientKind::Public {
            return Err(invalid("--allow-events needs a confidential client"));
        }

        let scopes = if self.scopes.is_empty() {
            [Scope::OpenId, Scope::Profile, Scope::NotesRead, Scope::NotesWrite]
                .into_iter()
                .collect()
        } else {
            ScopeSet::parse_known(&self.scopes).map_err(RegistrationError::Invalid)?
        };

        let audiences = if self.audiences.is_empty() {
            vec![default_audience.to_owned()]
        } else {
            dedup(self.audiences)
        };
        for aud in &audiences {
            if aud.is_empty() || aud.len() > 2000 || aud.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(invalid(format!(
                    "audience {aud:?} must be a non-empty string without spaces"
                )));
            }
        }

        let backchannel_logout_uri = self
            .backchannel_logout_uri
            .as_deref()
            .map(backchannel_logout_uri)
            .transpose()?;
        if backchannel_logout_uri.is_some() && !grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(invalid(
                "--backchannel-logout-uri is only used with the authorization_code grant",
            ));
        }

        Ok(Client {
            client_id: String::new(),
            name: name.to_owned(),
            kind,
            secret_hash: None,
            previous_secret: None,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            scopes,
            audiences,
            first_party: self.first_party,
            allow_introspection: self.allow_introspection,
            backchannel_logout_uri,
            require_nonce: self.require_nonce,
            allow_events: self.allow_events,
        })
    }
}

/// A back-channel logout URI (Back-Channel Logout 1.0 section 2.2): an
/// absolute `https` URL (`http` only on a loopback host, for development)
/// without a fragment; the server POSTs to it, so no custom schemes.
fn backchannel_logout_uri(input: &str) -> Result<String, RegistrationError> {
    let bad = || {
        invalid(format!(
            "back-channel logout URI {input:?} must be an absolute https URL without a fragment"
        ))
    };
    if input.len() > 2000 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let url = url::Url::parse(input).map_err(|_| bad())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad()),
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    Ok(input.to_owned())
}

fn dedup_uris(list: Vec<RedirectUri>) -> Vec<RedirectUri> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|u| seen.insert(u.as_str().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spa() -> ClientRegistration {
        ClientRegistration {
            name: "Demo SPA".into(),
            redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
            first_party: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_feed_reader_gets_no_grant_unless_asked() {
        let reader = ClientRegistration {
            name: "api".into(),
            confidential: true,
            allow_events: true,
            ..Default::default()
        }
        .check("aud")
        .unwrap();
        assert!(reader.client.grant_types.is_empty());
        assert!(
            ClientRegistration::of(&reader.client)
                .recheck(&reader.client)
                .is_ok()
        );
    }

    #[test]
    fn public_client_gets_code_and_refresh_and_no_secret() {
        let new = spa().check("aud").unwrap();
        assert!(new.secret.is_none());
        assert!(new.client.allows_grant(GrantType::AuthorizationCode));
        assert!(new.client.allows_grant(GrantType::RefreshToken));
        assert_eq!(new.client.audiences, ["aud"]);
        assert_eq!(
            new.client.scopes.to_string(),
            "openid profile notes:read notes:write"
        );
        assert_eq!(new.client.client_id.len(), 22);
    }

    #[test]
    fn confidential_client_secret_is_256_bits_and_stored_hashed() {
        let new = ClientRegistration {
            name: "svc".into(),
            confidential: true,
            ..Default::default()
        }
        .check("aud")
        .unwrap();
        let secret = new.secret.unwrap();
        assert_eq!(secret.len(), 43);
        assert_eq!(
            new.client.secret_hash.as_deref(),
            Some(crypto::token_hash(&secret).as_slice())
        );
        assert!(new.client.allows_grant(GrantType::ClientCredentials));
    }

    #[test]
    fn bad_registrations_are_refused() {
        let cases = [
            ClientRegistration {
                redirect_uris: vec!["/relative".into()],
                ..spa()
            },
            ClientRegistration {
                redirect_uris: vec!["https://a.example/cb#frag".into()],
                ..spa()
            },
            ClientRegistration {
                grant_types: vec!["password".into()],
                ..spa()
            },
            ClientRegistration {
                scopes: vec!["email".into()],
                ..spa()
            },
            ClientRegistration {
                grant_types: vec!["client_credentials".into()],
                ..spa()
            },
            ClientRegistration {
                allow_introspection: true,
                ..spa()
            },
            ClientRegistration {
                redirect_uris: vec![],
                ..spa()
            },
            ClientRegistration {
                name: " ".into(),
                ..spa()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.clone().check("aud"), Err(RegistrationError::Invalid(_))),
                "{case:?}"
            );
        }
    }
}
