use super::{escape, layout};

/// A page that explains why the request cannot go on (and never redirects).
pub fn error_page(title: &str, message: &str) -> String {
    layout(
        title,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

/// A page with a heading and a line of text.
pub fn message_page(title: &str, message: &str) -> String {
    layout(
        title,
        &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(message)),
    )
}

/// The logout confirmation: a form so a cross-site link cannot log the user
/// out by itself.
/// Who the logout page speaks to.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    In(&'a str),
    /// A session cookie whose session has ended.
    Expired,
    Out,
}

pub fn logout_page(action: &str, csrf_token: &str, who: Signed<'_>) -> String {
    let who = match who {
        Signed::In(user) => format!("<p>You are signed in as <strong>{}</strong>.</p>", escape(user)),
        Signed::Expired => {
            "<p>Your session here has ended; signing out also ends what it was used for.</p>".to_owned()
        }
        Signed::Out => "<p>You are not signed in here.</p>".to_owned(),
    };
    layout(
        "Sign out",
        &format!(
            r#"<h1>Sign out?</h1>
{who}
<form method="post" action="{action}">
<input type="hidden" name="csrf_token" value="{csrf}">
<button type="submit">Sign out</button>
</form>"#,
            action = escape(action),
            csrf = escape(csrf_token),
        ),
    )
}
