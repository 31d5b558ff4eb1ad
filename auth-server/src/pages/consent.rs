use super::{escape, layout};
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
    let scopes: String = page
        .scope
        .iter()
        .map(|s| {
            format!(
                "<li><strong>{}</strong>: {}</li>\n",
                escape(s.as_str()),
                escape(s.description())
            )
        })
        .collect();
    layout(
        "Allow access?",
        &format!(
            r#"<h1>Allow access?</h1>
<p><strong class="client-name">{client}</strong> asks to:</p>
<ul class="scopes">
{scopes}</ul>
<p class="muted">You will be sent back to {origin}. Signed in as {user}.</p>
<form method="post" action="{action}">
<input type="hidden" name="csrf_token" value="{csrf}">
<div class="actions">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</div>
</form>"#,
            client = escape(page.client_name),
            user = escape(page.username),
            origin = escape(page.redirect_origin),
            action = escape(page.action),
            csrf = escape(page.csrf_token),
        ),
    )
}
