use maud::html;

use super::layout;
use crate::domain::ScopeSet;

/// What the consent page shows.
pub struct ConsentPage<'a> {
    /// Where the form posts: the authorization request URL itself.
    pub action: &'a str,
    pub csrf_token: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub scope: &'a ScopeSet,
    /// Where the answer goes (scheme://host[:port] of the redirect URI), so
    /// the user can see which site is asking.
    pub redirect_origin: &'a str,
}

/// `INTERFACE.md`: one `<form method="post">` with a hidden `csrf_token` and
/// two submit buttons named `decision` (`approve`, `deny`).
pub fn consent_page(page: &ConsentPage<'_>) -> String {
    layout(
        "Allow access?",
        html! {
            h1 { "Allow access?" }
            p { strong.client-name { (page.client_name) } " asks to:" }
            ul.scopes {
                @for scope in page.scope.iter() {
                    li { strong { (scope.as_str()) } ": " (scope.description()) }
                }
            }
            p.muted {
                "You will be sent back to " (page.redirect_origin)
                ". Signed in as " (page.username) "."
            }
            form method="post" action=(page.action) {
                input type="hidden" name="csrf_token" value=(page.csrf_token);
                div.actions {
                    button type="submit" name="decision" value="approve" { "Allow" }
                    button type="submit" name="decision" value="deny" class="secondary" { "Deny" }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::escaping::{HOSTILE, assert_escaped};

    fn page(client_name: &str, username: &str, redirect_origin: &str, action: &str) -> String {
        consent_page(&ConsentPage {
            action,
            csrf_token: "t0ken",
            client_name,
            username,
            scope: &ScopeSet::all(),
            redirect_origin,
        })
    }

    #[test]
    fn consent_page_escapes_client_name_and_username() {
        assert_escaped(&page(HOSTILE, "alice", "https://app.example", "/authorize"), 1);
        assert_escaped(&page("Notes", HOSTILE, "https://app.example", "/authorize"), 1);
    }

    #[test]
    fn consent_page_escapes_redirect_origin_and_action() {
        assert_escaped(&page("Notes", "alice", HOSTILE, HOSTILE), 2);
    }

    #[test]
    fn consent_form_has_the_interface_fields() {
        let html = page("Notes", "alice", "https://app.example", "/authorize?a=1&b=2");
        assert_eq!(html.matches("<form ").count(), 1, "{html}");
        assert!(html.contains(r#"<form method="post" action="/authorize?a=1&amp;b=2">"#));
        assert!(html.contains(r#"name="csrf_token" value="t0ken""#), "{html}");
        assert!(html.contains(r#"name="decision" value="approve""#), "{html}");
        assert!(html.contains(r#"name="decision" value="deny""#), "{html}");
        assert!(
            html.contains(r#"<strong class="client-name">Notes</strong>"#),
            "{html}"
        );
        for scope in ScopeSet::all().iter() {
            let item = format!(
                "<li><strong>{}</strong>: {}</li>",
                scope.as_str(),
                scope.description()
            );
            assert!(html.contains(&item), "{html}");
        }
    }
}
