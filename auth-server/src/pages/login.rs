use maud::html;

use super::layout;

/// What the login page shows.
pub struct LoginPage<'a> {
    /// Where the form posts (`/login?return_to=...`).
    pub action: &'a str,
    pub csrf_token: &'a str,
    /// The name of the application the user is signing in to, if known.
    pub client_name: Option<&'a str>,
    /// The username typed last time, to fill the field again.
    pub username: &'a str,
    pub error: Option<&'a str>,
}

/// `INTERFACE.md`: one `<form method="post">` with `username`, `password`
/// and a hidden `csrf_token`.
pub fn login_page(page: &LoginPage<'_>) -> String {
    layout(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(name) = page.client_name {
                p { "to continue to " strong { (name) } }
            }
            @if let Some(error) = page.error {
                p.error role="alert" { (error) }
            }
            form method="post" action=(page.action) {
                input type="hidden" name="csrf_token" value=(page.csrf_token);
                label for="username" { "Username" }
                input #username name="username" type="text" autocomplete="username"
                    autocapitalize="none" required maxlength="64" value=(page.username);
                label for="password" { "Password" }
                input #password name="password" type="password"
                    autocomplete="current-password" required maxlength="128";
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::escaping::{HOSTILE, assert_escaped};

    fn page<'a>(client_name: Option<&'a str>, username: &'a str, error: Option<&'a str>) -> String {
        login_page(&LoginPage {
            action: "/login?return_to=%2Fauthorize",
            csrf_token: "t0ken",
            client_name,
            username,
            error,
        })
    }

    #[test]
    fn login_page_escapes_username_client_name_and_error() {
        assert_escaped(&page(Some(HOSTILE), "alice", None), 1);
        assert_escaped(&page(None, HOSTILE, None), 1);
        assert_escaped(&page(None, "alice", Some(HOSTILE)), 1);
    }

    #[test]
    fn login_page_escapes_action_and_csrf_token() {
        let html = login_page(&LoginPage {
            action: HOSTILE,
            csrf_token: HOSTILE,
            client_name: None,
            username: "",
            error: None,
        });
        assert_escaped(&html, 2);
    }

    #[test]
    fn login_form_has_the_interface_fields() {
        let html = page(Some("Notes"), "alice", Some("Incorrect username or password."));
        assert_eq!(html.matches("<form ").count(), 1, "{html}");
        assert!(html.contains(r#"<form method="post" action="/login?return_to=%2Fauthorize">"#));
        assert!(html.contains(r#"name="csrf_token" value="t0ken""#), "{html}");
        assert!(html.contains(r#"name="username" type="text""#), "{html}");
        assert!(html.contains(r#"value="alice""#), "{html}");
        assert!(html.contains(r#"name="password" type="password""#), "{html}");
        assert!(
            html.contains("<p>to continue to <strong>Notes</strong></p>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<p class="error" role="alert">Incorrect"#),
            "{html}"
        );
    }

    #[test]
    fn login_page_without_client_or_error_shows_neither() {
        let html = page(None, "", None);
        assert!(!html.contains("to continue to"), "{html}");
        assert!(!html.contains("role=\"alert\""), "{html}");
    }
}
