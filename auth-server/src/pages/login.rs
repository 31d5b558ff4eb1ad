use super::{escape, layout};

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
    let client = page
        .client_name
        .map(|name| format!(r#"<p>to continue to <strong>{}</strong></p>"#, escape(name)))
        .unwrap_or_default();
    let error = page
        .error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    layout(
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
{client}{error}<form method="post" action="{action}">
<input type="hidden" name="csrf_token" value="{csrf}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" required maxlength="64" value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="128">
<button type="submit">Sign in</button>
</form>"#,
            action = escape(page.action),
            csrf = escape(page.csrf_token),
            username = escape(page.username),
        ),
    )
}
