//! `spa-server`: serves the demo SPA from `examples/spa/static` on its own
//! origin (so CORS is exercised for real) with a strict CSP, plus
//! `/config.json` telling the app its client id, issuer and API, and under
//! `/vendor/jose/` the browser build of `jose` pinned in
//! `examples/spa/package.json` (installed by `npm ci`), so that the CSP's
//! `script-src 'self'` covers it.
//!
//! Settings (environment): `SPA_LISTEN` (default `127.0.0.1:5173`),
//! `SPA_CLIENT_ID` (required), `SPA_ISSUER` (default
//! `http://127.0.0.1:8080`), `SPA_API` (default `http://127.0.0.1:8081/api`),
//! `SPA_STATIC_DIR` (default: the `static` folder next to this crate),
//! `SPA_NODE_MODULES` (default: the `node_modules` folder next to this crate).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

struct Site {
    dir: PathBuf,
    /// `jose`'s browser build, canonical (no symlinks, no `..`).
    jose: PathBuf,
    config: String,
    csp: String,
}

/// The browser ES module build inside the `jose` package.
const JOSE_BUILD: &str = "jose/dist/webapi";
const JOSE_PREFIX: &str = "/vendor/jose/";

fn origin(url: &str) -> Result<String, String> {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| format!("{url:?} is not a URL: {e}"))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn with_headers(site: &Site, mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, site.csp.as_str()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    response
}

async fn config_json(site: web::Data<Site>) -> HttpResponse {
    with_headers(&site, HttpResponse::Ok())
        .content_type("application/json")
        .body(site.config.clone())
}

/// Static files; unknown paths (client-side routes such as `/callback`)
/// get `index.html`.
async fn file(req: HttpRequest, site: web::Data<Site>) -> HttpResponse {
    let requested = req.path().trim_start_matches('/');
    let safe = !requested
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'));
    let mut path = site.dir.join(if requested.is_empty() || !safe {
        "index.html"
    } else {
        requested
    });
    if !path.is_file() {
        path = site.dir.join("index.html");
    }
    match std::fs::read(&path) {
        Ok(bytes) => with_headers(&site, HttpResponse::Ok())
            .content_type(content_type(&path))
            .body(bytes),
        Err(_) => with_headers(&site, HttpResponse::NotFound()).finish(),
    }
}

/// `relative` (a raw, still percent-encoded URL path) as a `.js` file under
/// `root`, or `None`. Only plain names pass: no empty, dot or encoded
/// segments; and the file, symlinks resolved, must still lie under `root`.
fn vendor_file(root: &Path, relative: &str) -> Option<PathBuf> {
    let plain = relative.ends_with(".js")
        && relative.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if !plain {
        return None;
    }
    let file = root.join(relative).canonicalize().ok()?;
    (file.starts_with(root) && file.is_file()).then_some(file)
}

async fn vendor_jose(req: HttpRequest, site: web::Data<Site>) -> HttpResponse {
    let relative = req.path().strip_prefix(JOSE_PREFIX).unwrap_or_default();
    match vendor_file(&site.jose, relative).map(std::fs::read) {
        Some(Ok(bytes)) => with_headers(&site, HttpResponse::Ok())
            .content_type("text/javascript; charset=utf-8")
            .body(bytes),
        _ => with_headers(&site, HttpResponse::NotFound()).finish(),
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn run() -> Result<(), String> {
    let listen = env("SPA_LISTEN", "127.0.0.1:5173");
    let client_id = std::env::var("SPA_CLIENT_ID").map_err(|_| "SPA_CLIENT_ID is required".to_owned())?;
    let issuer = env("SPA_ISSUER", "http://127.0.0.1:8080");
    let api = env("SPA_API", "http://127.0.0.1:8081/api");
    let dir = std::env::var_os("SPA_STATIC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("static"));
    let node_modules = std::env::var_os("SPA_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules"));
    let jose = node_modules.join(JOSE_BUILD).canonicalize().map_err(|e| {
        format!(
            "{}: {e}; run `npm ci` in examples/spa",
            node_modules.join(JOSE_BUILD).display()
        )
    })?;
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {} {}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
         require-trusted-types-for 'script'",
        origin(&issuer)?,
        origin(&api)?
    );
    let config = serde_json::json!({ "clientId": client_id, "issuer": issuer, "api": api }).to_string();
    let site = web::Data::new(Site {
        dir,
        jose,
        config,
        csp,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(site.clone())
            .route("/config.json", web::get().to(config_json))
            .route("/vendor/jose/{file:.*}", web::get().to(vendor_jose))
            .default_service(web::get().to(file))
    })
    .workers(1)
    .bind(&listen)
    .map_err(|e| format!("cannot listen on {listen}: {e}"))?
    .run();
    actix_web::rt::System::new()
        .block_on(server)
        .map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("spa-server: error: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_files_are_plain_js_names_that_stay_inside_the_package() {
        let base = std::env::temp_dir().join(format!("spa-vendor-test-{}", std::process::id()));
        let root = base.join("webapi");
        std::fs::create_dir_all(root.join("jwt")).unwrap();
        std::fs::write(root.join("index.js"), "export {};").unwrap();
        std::fs::write(root.join("jwt/verify.js"), "export {};").unwrap();
        std::fs::write(base.join("secret.js"), "outside").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.js"), root.join("link.js")).unwrap();
        let root = root.canonicalize().unwrap();

        assert_eq!(vendor_file(&root, "index.js"), Some(root.join("index.js")));
        assert_eq!(
            vendor_file(&root, "jwt/verify.js"),
            Some(root.join("jwt/verify.js"))
        );
        for bad in [
            "../secret.js",
            "jwt/../../secret.js",
            "%2e%2e/secret.js",
            "..%2Fsecret.js",
            "/secret.js",
            "jwt//verify.js",
            ".hidden.js",
            "jwt",
            "",
            "index.js/",
            "missing.js",
            "link.js",
        ] {
            assert_eq!(vendor_file(&root, bad), None, "{bad:?}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
