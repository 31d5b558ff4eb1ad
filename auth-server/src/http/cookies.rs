//! The auth-server's cookies. All are `HttpOnly`, `Secure`, `Path=/`; over
//! https their names carry the `__Host-` prefix, which makes the browser
//! refuse them from subdomains or without `Secure`.
//!
//! `SameSite=Lax`, not `Strict`, for the session: the authorization request
//! arrives as a top-level navigation from the application's site, and a
//! `Strict` cookie would not be sent with it, so a signed-in user would be
//! asked to sign in again on every authorization (see `docs/security.md`).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

pub use crate::state::{CookieNames, cookie_names as names};

fn base(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .finish()
}

/// A browser-session cookie (gone when the browser closes; the server-side
/// session has its own idle and absolute expiry).
pub fn set(name: &'static str, value: String) -> Cookie<'static> {
    base(name, value)
}

/// The device cookie: kept for 180 days, sent only with our own forms.
pub fn device(name: &'static str, value: String) -> Cookie<'static> {
    let mut cookie = base(name, value);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_max_age(CookieDuration::days(180));
    cookie
}

pub fn remove(name: &'static str) -> Cookie<'static> {
    let mut cookie = base(name, String::new());
    cookie.set_max_age(CookieDuration::ZERO);
    cookie
}

/// A cookie value we issued: 43 base64url characters. Anything else is
/// ignored.
pub fn read(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name).map(|c| c.value().to_owned()).filter(|v| {
        v.len() == 43
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}
