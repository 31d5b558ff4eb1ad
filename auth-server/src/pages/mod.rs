//! The HTML pages: plain forms that work without JavaScript, written as
//! `maud` templates. `maud` escapes every interpolated value (`&`, `<`, `>`,
//! `"`) and always quotes attributes with `"`, so text from a user, a client
//! registration or an error can only ever come out as text.
//!
//! The pages load one stylesheet from this server and no script; their CSP
//! (`http::pages`) forbids inline script and framing.

mod consent;
mod login;
mod simple;

pub use consent::{ConsentPage, consent_page};
pub use login::{LoginPage, login_page};
pub use simple::{Signed, error_page, logout_page, message_page};

use maud::{DOCTYPE, Markup, html};

/// The common frame of every page. `body` is markup built by `html!`, so it
/// is already escaped; only `maud`'s own `DOCTYPE` literal is pre-escaped.
fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            }
            body {
                main.card { (body) }
            }
        }
    }
    .into_string()
}

/// The stylesheet served at `/static/style.css`.
pub const STYLESHEET: &str = include_str!("style.css");

/// The icon served at `/static/favicon.svg` (and `/favicon.ico`).
pub const FAVICON: &str = include_str!("favicon.svg");

#[cfg(test)]
mod escaping {
    /// Text that would run as script if a page forgot to escape it.
    pub const HOSTILE: &str = r#"<script>"'&"#;

    /// `HOSTILE` as it must appear in a page: as text, in element content and
    /// in `"`-quoted attribute values alike.
    pub const HOSTILE_ESCAPED: &str = "&lt;script&gt;&quot;'&amp;";

    /// Asserts that `html` holds `HOSTILE` exactly `times` times, each time
    /// escaped, and never raw.
    pub fn assert_escaped(html: &str, times: usize) {
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains(r#""'"#), "{html}");
        assert_eq!(html.matches(HOSTILE_ESCAPED).count(), times, "{html}");
    }
}

#[cfg(test)]
mod tests {
    use super::escaping::{HOSTILE, HOSTILE_ESCAPED, assert_escaped};
    use super::*;

    #[test]
    fn layout_escapes_the_title() {
        let page = layout(HOSTILE, html! {});
        assert_escaped(&page, 1);
        assert!(
            page.contains(&format!("<title>{HOSTILE_ESCAPED}</title>")),
            "{page}"
        );
    }

    #[test]
    fn layout_loads_only_the_stylesheet_and_icon_from_this_server() {
        let page = layout("Sign in", html! { p { "x" } });
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
        assert!(page.contains(r#"<main class="card"><p>x</p></main>"#), "{page}");
        assert!(!page.contains("<script") && !page.contains("<style") && !page.contains("style="));
    }
}
