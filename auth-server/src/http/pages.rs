//! HTML responses with the pages' security headers.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;

/// An HTML page. `form_origins` are origins a form on the page may end up
/// at after redirects (Chromium applies `form-action` to redirects too, so
/// a login or consent form that finishes at the client's redirect URI
/// needs the client's origin here).
pub fn html(status: StatusCode, body: String, form_origins: &[String]) -> HttpResponse {
    let mut form_action = String::from("'self'");
    for origin in form_origins {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

pub fn error(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    html(status, crate::pages::error_page(title, message), &[])
}

/// 303 See Other (after a form post) or 302 Found (after a GET).
pub fn redirect(location: &str, after_post: bool) -> HttpResponse {
    let status = if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
