//! Client authentication at the token, introspection and revocation
//! endpoints (RFC 6749 section 2.3.1): `client_secret_basic`,
//! `client_secret_post`, and `none` for public clients. Using two methods
//! in one request is `invalid_request`; any failure to authenticate is
//! `invalid_client`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{OAuthError, Params, StoreError};
use crate::crypto;
use crate::domain::ClientKind;
use crate::model::Client;

/// What the request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic` with id and secret.
    Basic { client_id: String, secret: String },
    /// `client_id` and `client_secret` in the form body.
    Post { client_id: String, secret: String },
    /// `client_id` only: a public client.
    None { client_id: String },
}

impl Credentials {
    pub fn client_id(&self) -> &str {
        match self {
            Credentials::Basic { client_id, .. }
            | Credentials::Post { client_id, .. }
            | Credentials::None { client_id } => client_id,
        }
    }

    pub fn used_basic(&self) -> bool {
        matches!(self, Credentials::Basic { .. })
    }

    /// Whether a secret is presented (a confidential client's attempt).
    pub fn has_secret(&self) -> bool {
        !matches!(self, Credentials::None { .. })
    }
}

fn form_decode(text: &str) -> Option<String> {
    // RFC 6749 section 2.3.1: id and secret are form-urlencoded before
    // being joined with ':' and base64-encoded.
    if text.contains('&') {
        return None;
    }
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// Reads the credentials from the `Authorization` header and the form.
pub fn extract(authorization: Option<&str>, params: &Params) -> Result<Credentials, OAuthError> {
    for name in ["client_id", "client_secret"] {
        if params.is_repeated(name) {
            return Err(OAuthError::InvalidRequest(
                "a client credential parameter is repeated",
            ));
        }
    }
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some(header) = authorization {
        let basic_failed = OAuthError::InvalidClient { used_basic: true };
        let encoded = header
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case("basic "))
            .map(|_| header[6..].trim())
            .ok_or(basic_failed.clone())?;
        let decoded = STANDARD.decode(encoded).map_err(|_| basic_failed.clone())?;
        let decoded = String::from_utf8(decoded).map_err(|_| basic_failed.clone())?;
        let (id, secret) = decoded.split_once(':').ok_or(basic_failed.clone())?;
        let client_id = form_decode(id).ok_or(basic_failed.clone())?;
        let secret = form_decode(secret).ok_or(basic_failed.clone())?;
        if client_id.is_empty() {
            return Err(basic_failed);
        }
        if body_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method: Basic or client_secret in the body",
            ));
        }
        if body_id.is_some_and(|b| b != client_id) {
            return Err(OAuthError::InvalidRequest(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(Credentials::Basic { client_id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Credentials::Post {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (Some(id), None) => Ok(Credentials::None {
            client_id: id.to_owned(),
        }),
        (None, Some(_)) => Err(OAuthError::InvalidRequest("client_secret without client_id")),
        (None, None) => Err(OAuthError::InvalidClient { used_basic: false }),
    }
}

/// Checks `credentials` against the registered `client` (`None` when the
/// client id is unknown). Confidential clients must present their secret
/// (or, during a rotation's overlap, the one it replaced, until `now`
/// reaches the end of the overlap); public clients must not present one.
pub fn authenticate(
    credentials: &Credentials,
    client: Option<&Client>,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    authenticate_with(credentials, client, Some(now))
}

/// [`authenticate`] against the current secret only (`previous_until:
/// None`), or also against a replaced one until its overlap ends.
pub fn authenticate_with(
    credentials: &Credentials,
    client: Option<&Client>,
    previous_until: Option<DateTime<Utc>>,
) -> Result<(), OAuthError> {
    let failed = OAuthError::InvalidClient {
        used_basic: credentials.used_basic(),
    };
    let Some(client) = client else {
        return Err(failed);
    };
    match (client.kind, credentials) {
        (ClientKind::Confidential, Credentials::Basic { secret, .. } | Credentials::Post { secret, .. }) => {
            let presented = crypto::token_hash(secret);
            let current = client
                .secret_hash
                .as_ref()
                .is_some_and(|stored| crypto::ct_eq(&presented, stored));
            let previous = match (&client.previous_secret, previous_until) {
                (Some(old), Some(now)) => now < old.expires_at && crypto::ct_eq(&presented, &old.hash),
                _ => false,
            };
            if current || previous { Ok(()) } else { Err(failed) }
        }
        (ClientKind::Public, Credentials::None { .. }) => Ok(()),
        _ => Err(failed),
    }
}

/// Looks clients up by id; implemented by the in-memory cache in front of
/// the database.
pub trait ClientDirectory {
    fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::ClientRegistration;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    fn confidential() -> (Client, String) {
        let new = ClientRegistration {
            name: "svc".into(),
            confidential: true,
            ..Default::default()
        }
        .check("aud")
        .unwrap();
        (new.client, new.secret.unwrap())
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_replaced_secret_works_until_the_overlap_ends_and_not_a_second_longer() {
        let (mut client, old) = confidential();
        let (replacement, new) = confidential();
        client.previous_secret = Some(crate::model::PreviousSecret {
            hash: client.secret_hash.take().unwrap(),
            expires_at: now() + chrono::Duration::seconds(60),
        });
        client.secret_hash = replacement.secret_hash;
        let with = |secret: &str, at| {
            let header = basic(&client.client_id, secret);
            let creds = extract(Some(&header), &Params::default()).unwrap();
            authenticate(&creds, Some(&client), at).is_ok()
        };
        assert!(with(&new, now()));
        assert!(with(&old, now()));
        assert!(with(&old, now() + chrono::Duration::seconds(59)));
        assert!(!with(&old, now() + chrono::Duration::seconds(60)));
        assert!(with(&new, now() + chrono::Duration::days(1)));
        assert!(!with("a-guess", now()));
    }

    #[test]
    fn basic_and_post_both_authenticate_a_confidential_client() {
        let (client, secret) = confidential();
        let header = basic(&client.client_id, &secret);
        let creds = extract(Some(&header), &Params::default()).unwrap();
        assert!(authenticate(&creds, Some(&client), now()).is_ok());
        let form = Params::from_pairs([
            ("client_id", client.client_id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        let creds = extract(None, &form).unwrap();
        assert!(authenticate(&creds, Some(&client), now()).is_ok());
    }

    #[test]
    fn wrong_secret_is_invalid_client_and_says_whether_basic_was_used() {
        let (client, _) = confidential();
        let creds = extract(Some(&basic(&client.client_id, "nope")), &Params::default()).unwrap();
        assert_eq!(
            authenticate(&creds, Some(&client), now()),
            Err(OAuthError::InvalidClient { used_basic: true })
        );
        let form = Params::from_pairs([
            ("client_id", client.client_id.as_str()),
            ("client_secret", "nope"),
        ]);
        let creds = extract(None, &form).unwrap();
        assert_eq!(
            authenticate(&creds, Some(&client), now()),
            Err(OAuthError::InvalidClient { used_basic: false })
        );
    }

    #[test]
    fn two_methods_at_once_is_invalid_request() {
        let (client, secret) = confidential();
        let form = Params::from_pairs([
            ("client_id", client.client_id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        let e = extract(Some(&basic(&client.client_id, &secret)), &form).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn confidential_client_without_secret_fails() {
        let (client, _) = confidential();
        let creds = extract(
            None,
            &Params::from_pairs([("client_id", client.client_id.as_str())]),
        )
        .unwrap();
        assert_eq!(
            authenticate(&creds, Some(&client), now()).unwrap_err().code(),
            "invalid_client"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = basic("my%3Aclient", "s%20e+cret");
        let creds = extract(Some(&header), &Params::default()).unwrap();
        assert_eq!(
            creds,
            Credentials::Basic {
                client_id: "my:client".into(),
                secret: "s e cret".into()
            }
        );
    }

    #[test]
    fn no_credentials_at_all_is_invalid_client() {
        assert_eq!(
            extract(None, &Params::default()).unwrap_err().code(),
            "invalid_client"
        );
    }
}
