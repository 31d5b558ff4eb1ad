//! The HTML pages: plain forms that work without JavaScript. Every value
//! that is not a literal of this file goes through [`escape`].
//!
//! The pages load one stylesheet from this server and no script; their CSP
//! (`http::pages`) forbids inline script and framing.

mod consent;
mod login;
mod simple;

pub use consent::{ConsentPage, consent_page};
pub use login::{LoginPage, login_page};
pub use simple::{Signed, error_page, logout_page, message_page};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The common frame of every page.
fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<main class="card">
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The stylesheet served at `/static/style.css`.
pub const STYLESHEET: &str = include_str!("style.css");

/// The icon served at `/static/favicon.svg` (and `/favicon.ico`).
pub const FAVICON: &str = include_str!("favicon.svg");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('1')">&"#),
            "&lt;img src=x onerror=&quot;a(&#x27;1&#x27;)&quot;&gt;&amp;"
        );
    }
}
