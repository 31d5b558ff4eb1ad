//! The authorization endpoint's own decisions, around the engine: which
//! client and redirect URI a request is for (errors here are shown as a
//! page, never redirected: RFC 6749 section 4.1.2.1, RFC 9700 section
//! 4.11), and whether the user must be asked for consent.

use super::client_auth::ClientDirectory;
use super::{Params, StoreError};
use crate::domain::{RedirectUri, ScopeSet};
use crate::model::Client;

/// A request whose client and redirect URI are known good.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Client,
    /// The registered URI the request resolved to.
    pub redirect_uri: RedirectUri,
    /// Whether the request named it (it may be omitted when the client has
    /// exactly one).
    pub redirect_uri_given: bool,
}

/// Finds the client and redirect URI, or says why the user must see an
/// error page instead of being redirected.
pub fn resolve_target(
    params: &Params,
    clients: &mut dyn ClientDirectory,
) -> Result<Result<Target, &'static str>, StoreError> {
    if params.is_repeated("client_id") {
        return Ok(Err("The request names more than one client."));
    }
    if params.is_repeated("redirect_uri") {
        return Ok(Err("The request names more than one redirect URI."));
    }
    let Some(client_id) = params.get("client_id") else {
        return Ok(Err("The request does not say which application is asking."));
    };
    let Some(client) = clients.client(client_id)? else {
        return Ok(Err("The application is not registered here."));
    };
    let (redirect_uri, given) = match params.get("redirect_uri") {
        Some(given) => match client.redirect_uri(given) {
            Some(registered) => (registered.clone(), true),
            None => return Ok(Err("The redirect URI is not registered for this application.")),
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            [] => return Ok(Err("This application cannot use the authorization code flow.")),
            _ => {
                return Ok(Err(
                    "The request must name one of the application's redirect URIs.",
                ));
            }
        },
    };
    Ok(Ok(Target {
        client,
        redirect_uri,
        redirect_uri_given: given,
    }))
}

/// Whether the user must approve `scope` for `client`: never for
/// first-party clients; otherwise unless a remembered approval covers it.
pub fn needs_consent(client: &Client, remembered: Option<&ScopeSet>, scope: &ScopeSet) -> bool {
    !client.first_party && !remembered.is_some_and(|r| scope.is_subset(r))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::registration::ClientRegistration;

    struct Clients(HashMap<String, Client>);

    impl ClientDirectory for Clients {
        fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError> {
            Ok(self.0.get(client_id).cloned())
        }
    }

    fn setup(uris: &[&str]) -> (Clients, String) {
        let client = ClientRegistration {
            name: "app".into(),
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            ..Default::default()
        }
        .check("aud")
        .unwrap()
        .client;
        let id = client.client_id.clone();
        (Clients([(id.clone(), client)].into()), id)
    }

    fn resolve(clients: &mut Clients, query: &str) -> Result<Target, &'static str> {
        resolve_target(&Params::parse(query), clients).unwrap()
    }

    #[test]
    fn only_an_exact_registered_redirect_uri_is_accepted() {
        let (mut clients, id) = setup(&["https://app.example/cb"]);
        let enc = |u: &str| url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
        assert!(
            resolve(
                &mut clients,
                &format!("client_id={id}&redirect_uri={}", enc("https://app.example/cb"))
            )
            .is_ok()
        );
        for variant in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example:444/cb",
            "https://app.example/cb#f",
            "http://app.example/cb",
        ] {
            assert!(
                resolve(
                    &mut clients,
                    &format!("client_id={id}&redirect_uri={}", enc(variant))
                )
                .is_err(),
                "{variant}"
            );
        }
    }

    #[test]
    fn omitted_redirect_uri_defaults_only_when_there_is_one() {
        let (mut one, id) = setup(&["https://app.example/cb"]);
        let target = resolve(&mut one, &format!("client_id={id}")).unwrap();
        assert!(!target.redirect_uri_given);
        let (mut two, id) = setup(&["https://app.example/a", "https://app.example/b"]);
        assert!(resolve(&mut two, &format!("client_id={id}")).is_err());
    }

    #[test]
    fn unknown_or_repeated_client_gets_an_error_page() {
        let (mut clients, id) = setup(&["https://app.example/cb"]);
        assert!(resolve(&mut clients, "client_id=nope").is_err());
        assert!(resolve(&mut clients, &format!("client_id={id}&client_id={id}")).is_err());
        assert!(resolve(&mut clients, "").is_err());
    }

    #[test]
    fn consent_is_skipped_for_first_party_and_remembered_scopes() {
        let (clients, id) = setup(&["https://app.example/cb"]);
        let mut client = clients.0[&id].clone();
        let wanted = ScopeSet::parse_request("profile notes:read").unwrap();
        assert!(needs_consent(&client, None, &wanted));
        let remembered = ScopeSet::parse_request("profile notes:read notes:write").unwrap();
        assert!(!needs_consent(&client, Some(&remembered), &wanted));
        let more = ScopeSet::parse_request("profile admin").unwrap();
        assert!(needs_consent(&client, Some(&remembered), &more));
        client.first_party = true;
        assert!(!needs_consent(&client, None, &more));
    }
}
