use maud::html;

use super::layout;

/// A page that explains why the request cannot go on (and never redirects).
pub fn error_page(title: &str, message: &str) -> String {
    layout(
        title,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
        },
    )
}

/// A page with a heading and a line of text.
pub fn message_page(title: &str, message: &str) -> String {
    layout(
        title,
        html! {
            h1 { (title) }
            p { (message) }
        },
    )
}

/// Who the logout page speaks to.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    In(&'a str),
    /// A session cookie whose session has ended.
    Expired,
    Out,
}

/// The logout confirmation: a form so a cross-site link cannot log the user
/// out by itself.
/// `requested_by`: the application that sent the user here, when an
/// `id_token_hint` for this session proved it (RP-Initiated Logout 1.0).
pub fn logout_page(action: &str, csrf_token: &str, who: Signed<'_>, requested_by: Option<&str>) -> String {
    layout(
        "Sign out",
        html! {
            h1 { "Sign out?" }
            @if let Some(app) = requested_by {
                p { strong { (app) } " asks you to sign out." }
            }
            @match who {
                Signed::In(user) => p { "You are signed in as " strong { (user) } "." },
                Signed::Expired => {
                    p { "Your session here has ended; signing out also ends what it was used for." }
                }
                Signed::Out => p { "You are not signed in here." },
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf_token" value=(csrf_token);
                button type="submit" { "Sign out" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::escaping::{HOSTILE, assert_escaped};

    #[test]
    fn error_page_escapes_title_and_message() {
        // The title appears twice: in `<title>` and in `<h1>`.
        assert_escaped(&error_page(HOSTILE, "x"), 2);
        assert_escaped(&error_page("Error", HOSTILE), 1);
        assert!(error_page("Error", "x").contains(r#"<p class="error" role="alert">x</p>"#));
    }

    #[test]
    fn message_page_escapes_title_and_message() {
        assert_escaped(&message_page(HOSTILE, "x"), 2);
        assert_escaped(&message_page("Signed in", HOSTILE), 1);
    }

    #[test]
    fn logout_page_escapes_username_action_and_csrf_token() {
        assert_escaped(&logout_page("/logout", "t0ken", Signed::In(HOSTILE), None), 1);
        assert_escaped(&logout_page(HOSTILE, HOSTILE, Signed::Out, None), 2);
        assert_escaped(&logout_page("/logout", "t", Signed::Out, Some(HOSTILE)), 1);
    }

    #[test]
    fn logout_page_names_the_application_that_asked() {
        let html = logout_page("/logout", "t", Signed::In("alice"), Some("Notes"));
        assert!(
            html.contains("<strong>Notes</strong> asks you to sign out."),
            "{html}"
        );
    }

    #[test]
    fn logout_page_is_a_post_form_with_a_csrf_token() {
        for who in [Signed::In("alice"), Signed::Expired, Signed::Out] {
            let html = logout_page("/logout?client_id=x", "t0ken", who, None);
            assert_eq!(html.matches("<form ").count(), 1, "{html}");
            assert!(html.contains(r#"<form method="post" action="/logout?client_id=x">"#));
            assert!(html.contains(r#"name="csrf_token" value="t0ken""#), "{html}");
        }
        let signed_in = logout_page("/logout", "t", Signed::In("alice"), None);
        assert!(signed_in.contains("<p>You are signed in as <strong>alice</strong>.</p>"));
    }
}
