//! The authorization endpoint, the login page and the consent page
//! (issue 3; RFC 6749 section 4.1, RFC 7636, RFC 9207, RFC 9700).

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;

use crate::helpers::*;

const SPA_REDIRECT: &str = "http://127.0.0.1:5173/callback";
const EXPORTER_REDIRECT: &str = "https://exporter.example/cb";

/// A third-party confidential web app: consent is asked.
fn exporter(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Notes Exporter".into(),
        confidential: true,
        redirect_uris: vec![EXPORTER_REDIRECT.into()],
        ..Default::default()
    });
    (client, secret.expect("secret"))
}

/// `/authorize` with exactly these parameters, in this order.
fn authorize_query(pairs: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/authorize?{query}")
}

/// The parameters of a well-formed request, to be changed per test.
fn good_params<'a>(client: &'a Client, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uris[0].as_str()),
        ("state", "st4te"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The redirect back to the client: its address without the query.
fn without_query(url: &url::Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.to_string()
}

/// Asserts an error redirect to `redirect_uri` with `error`, `iss` and
/// (when given) `state`, and no code.
fn assert_error_redirect(app: &TestApp, reply: &Reply, redirect_uri: &str, error: &str, state: Option<&str>) {
    assert!(
        matches!(reply.status, 302 | 303),
        "expected an error redirect, got {}: {}",
        reply.status,
        reply.body
    );
    let back = reply.location(&app.base).expect("location");
    assert_eq!(without_query(&back), redirect_uri, "{back}");
    assert_eq!(query_value(&back, "error").as_deref(), Some(error), "{back}");
    assert_eq!(
        query_value(&back, "iss").as_deref(),
        Some(app.issuer.as_str()),
        "{back}"
    );
    assert_eq!(query_value(&back, "state").as_deref(), state, "{back}");
    assert!(
        !has_query(&back, "code"),
        "an error redirect carries a code: {back}"
    );
}

/// Asserts the HTML error page that must replace a redirect.
fn assert_error_page(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    assert_eq!(reply.header("location"), None, "{what} redirected");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}: {:?}",
        reply.headers
    );
    assert!(!reply.body.contains("code="), "{what}: {}", reply.body);
}

/// The directives of a Content-Security-Policy header, by name.
fn csp_directive(reply: &Reply, name: &str) -> Option<Vec<String>> {
    let csp = reply.header("content-security-policy")?;
    csp.split(';').map(str::trim).find_map(|d| {
        let mut parts = d.split_whitespace();
        (parts.next() == Some(name)).then(|| parts.map(str::to_owned).collect())
    })
}

fn assert_page_security_headers(reply: &Reply, what: &str) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(
        csp_directive(reply, "default-src"),
        Some(vec!["'none'".to_owned()]),
        "{what}: {csp}"
    );
    assert_eq!(
        csp_directive(reply, "frame-ancestors"),
        Some(vec!["'none'".to_owned()]),
        "{what}: {csp}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
}

/// The `Set-Cookie` header that sets `name`, if any.
fn set_cookie<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply
        .headers
        .get("set-cookie")?
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(String::as_str)
}

fn random_cookie_value() -> String {
    let (value, _) = pkce();
    value
}

// ---------------------------------------------------------------------------
// Full flows

#[test]
fn first_party_public_client_gets_a_code_with_state_and_iss_without_a_consent_page() {
    let app = spawn_app();
    let alice = app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let mut browser = app.browser();
    app.login(&mut browser, "alice");

    let (verifier, challenge) = pkce();
    let reply = browser.get(&authorize_url(
        &client,
        &challenge,
        &[("scope", "profile notes:read")],
    ));
    assert_eq!(reply.status, 302, "{}", reply.body);
    let back = reply.location(&app.base).unwrap();
    assert_eq!(without_query(&back), SPA_REDIRECT);
    assert_eq!(query_value(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(query_value(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    assert!(!has_query(&back, "error"), "{back}");
    let code = query_value(&back, "code").unwrap();

    let reply = app.redeem_code(&client, None, &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "profile notes:read");
    assert!(tokens["refresh_token"].is_string());
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], "profile notes:read");
}

#[test]
fn third_party_confidential_client_is_approved_on_the_consent_page_and_gets_a_code() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = exporter(&app);
    let mut browser = app.browser();
    let (verifier, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[("scope", "profile notes:read")]);

    let first = browser.get(&url);
    let page = sign_in_if_asked(&mut browser, first, "alice");
    assert!(is_consent_page(&page), "{} {}", page.status, page.body);
    assert!(page.body.contains("Notes Exporter"), "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(
        page.body.contains("name=\"decision\" value=\"deny\""),
        "{}",
        page.body
    );
    assert!(page.input_value("csrf_token").is_some_and(|t| !t.is_empty()));
    assert!(page.body.contains("profile") && page.body.contains("notes:read"));
    assert!(page.body.contains("Read your notes"), "{}", page.body);
    assert!(
        !page.body.contains("notes:write"),
        "a scope not asked for is shown"
    );

    let approved = decide_consent(&mut browser, &page, "approve");
    assert_eq!(approved.status, 303, "{}", approved.body);
    let back = approved.location(&app.base).unwrap();
    assert_eq!(without_query(&back), EXPORTER_REDIRECT);
    assert_eq!(query_value(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(query_value(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    let code = query_value(&back, "code").expect("code");

    let reply = app.redeem_code(&client, Some(&secret), &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "profile notes:read");
}

#[test]
fn denied_consent_redirects_with_access_denied_state_and_iss_and_is_not_remembered() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, _) = exporter(&app);
    let mut browser = app.browser();
    let (_, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[("scope", "profile")]);

    let first = browser.get(&url);
    let page = sign_in_if_asked(&mut browser, first, "alice");
    let denied = decide_consent(&mut browser, &page, "deny");
    assert_eq!(denied.status, 303, "{}", denied.body);
    assert_error_redirect(&app, &denied, EXPORTER_REDIRECT, "access_denied", Some("st4te"));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM consents"), 0);

    let again = browser.get(&url);
    assert!(
        is_consent_page(&again),
        "a denial was remembered: {} {}",
        again.status,
        again.body
    );
}

#[test]
fn approved_consent_is_remembered_for_the_same_or_fewer_scopes_and_asked_again_for_more() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, _) = exporter(&app);
    let mut browser = app.browser();
    let (_, challenge) = pkce();

    let back = app.authorize_approving(
        &mut browser,
        &authorize_url(&client, &challenge, &[("scope", "profile notes:read")]),
        "alice",
    );
    assert!(has_query(&back, "code"), "{back}");

    for fewer in ["profile notes:read", "notes:read"] {
        let reply = browser.get(&authorize_url(&client, &challenge, &[("scope", fewer)]));
        assert_eq!(reply.status, 302, "{fewer}: consent asked again: {}", reply.body);
        let back = reply.location(&app.base).unwrap();
        assert!(has_query(&back, "code"), "{fewer}: {back}");
    }

    // Per user: Bob has approved nothing.
    let mut bob = app.browser();
    app.create_user("bob", &["user"]);
    let first = bob.get(&authorize_url(&client, &challenge, &[("scope", "profile")]));
    let reply = sign_in_if_asked(&mut bob, first, "bob");
    assert!(
        is_consent_page(&reply),
        "Alice's consent let Bob through: {}",
        reply.status
    );

    let more = authorize_url(&client, &challenge, &[("scope", "profile notes:write")]);
    let reply = browser.get(&more);
    assert!(
        is_consent_page(&reply),
        "more scopes were granted silently: {} {}",
        reply.status,
        reply.body
    );
    assert!(reply.body.contains("notes:write"), "{}", reply.body);
}

#[test]
fn consent_post_with_a_missing_or_wrong_csrf_token_is_refused_with_403() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let (client, _) = exporter(&app);
    let (_, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[("scope", "profile")]);

    // Bob's own, valid consent token is no good in Alice's session.
    let mut bob = app.browser();
    let first = bob.get(&url);
    let bobs_page = sign_in_if_asked(&mut bob, first, "bob");
    let bobs_token = bobs_page.input_value("csrf_token").unwrap();

    let mut alice = app.browser();
    let first = alice.get(&url);
    let page = sign_in_if_asked(&mut alice, first, "alice");
    assert!(is_consent_page(&page));
    let action = page.form_action().unwrap();
    let forged = "A".repeat(43);
    for (what, fields) in [
        ("missing", vec![("decision", "approve")]),
        (
            "wrong",
            vec![("decision", "approve"), ("csrf_token", forged.as_str())],
        ),
        (
            "another session's",
            vec![("decision", "approve"), ("csrf_token", bobs_token.as_str())],
        ),
    ] {
        let reply = alice.post_form(&action, &fields);
        assert_eq!(reply.status, 403, "{what} CSRF token: {}", reply.body);
        assert_eq!(reply.header("location"), None, "{what} CSRF token redirected");
    }
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM consents"), 0);
}

#[test]
fn consent_page_escapes_the_client_name() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, _) = app.create_client(ClientRegistration {
        name: "<script>alert(\"pwned\")</script> & Co".into(),
        redirect_uris: vec![EXPORTER_REDIRECT.into()],
        ..Default::default()
    });
    let mut browser = app.browser();
    let (_, challenge) = pkce();
    let first = browser.get(&authorize_url(&client, &challenge, &[]));
    let page = sign_in_if_asked(&mut browser, first, "alice");
    assert!(is_consent_page(&page), "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; Co"),
        "{}",
        page.body
    );
}

// ---------------------------------------------------------------------------
// Requests that must not be redirected

#[test]
fn redirect_uri_that_is_not_an_exact_match_gets_an_error_page_and_no_redirect() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let spa = app.spa_client();
    let (web, _) = exporter(&app);
    let (_, challenge) = pkce();
    let variants: [(&Client, &str, &str); 12] = [
        (&spa, "trailing slash", "http://127.0.0.1:5173/callback/"),
        (&spa, "path case", "http://127.0.0.1:5173/Callback"),
        (&spa, "scheme case", "HTTP://127.0.0.1:5173/callback"),
        (&spa, "extra query", "http://127.0.0.1:5173/callback?next=/admin"),
        (&spa, "other port", "http://127.0.0.1:5174/callback"),
        (&spa, "no port", "http://127.0.0.1/callback"),
        (&spa, "fragment", "http://127.0.0.1:5173/callback#frag"),
        (&spa, "other loopback name", "http://localhost:5173/callback"),
        (&web, "host case", "https://EXPORTER.example/cb"),
        (&web, "http instead of https", "http://exporter.example/cb"),
        (&web, "explicit default port", "https://exporter.example:443/cb"),
        (&web, "other host", "https://evil.example/cb"),
    ];
    let mut signed_in = app.browser();
    app.login(&mut signed_in, "alice");
    for (client, what, redirect_uri) in variants {
        let mut params = good_params(client, &challenge);
        params[2] = ("redirect_uri", redirect_uri);
        let url = authorize_query(&params);
        assert_error_page(&signed_in.get(&url), &format!("{what} (signed in)"));
        assert_error_page(&app.browser().get(&url), &format!("{what} (signed out)"));
    }
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
}

#[test]
fn unknown_missing_or_repeated_client_id_or_redirect_uri_gets_an_error_page() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    app.login(&mut browser, "alice");
    let good = good_params(&client, &challenge);

    let mut unknown = good.clone();
    unknown[1] = ("client_id", "no-such-client");
    let missing: Vec<_> = good.iter().copied().filter(|(k, _)| *k != "client_id").collect();
    let mut twice = good.clone();
    twice.push(("client_id", client.client_id.as_str()));
    let mut two_uris = good.clone();
    two_uris.push(("redirect_uri", SPA_REDIRECT));
    for (what, params) in [
        ("unknown client_id", unknown),
        ("missing client_id", missing),
        ("client_id twice", twice),
        ("redirect_uri twice", two_uris),
    ] {
        assert_error_page(&browser.get(&authorize_query(&params)), what);
    }
}

// ---------------------------------------------------------------------------
// Requests that are refused with an error redirect

#[test]
fn repeated_parameters_are_refused_with_an_invalid_request_redirect() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    app.login(&mut browser, "alice");

    let duplicates: [&[(&str, &str)]; 4] = [
        &[("scope", "profile"), ("scope", "notes:read")],
        &[("response_type", "code")],
        &[("code_challenge", challenge.as_str())],
        &[("code_challenge_method", "S256")],
    ];
    for extra in duplicates {
        let name = extra[0].0;
        let mut params = good_params(&client, &challenge);
        params.extend_from_slice(extra);
        let reply = browser.get(&authorize_query(&params));
        assert_eq!(reply.status, 302, "{name} twice: {}", reply.body);
        assert_error_redirect(&app, &reply, SPA_REDIRECT, "invalid_request", Some("st4te"));
    }

    // With two states neither can be echoed, but the error still redirects.
    let mut params = good_params(&client, &challenge);
    params.push(("state", "other"));
    let reply = browser.get(&authorize_query(&params));
    assert_error_redirect(&app, &reply, SPA_REDIRECT, "invalid_request", None);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
}

#[test]
fn response_type_other_than_code_is_refused_with_unsupported_response_type() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    app.login(&mut browser, "alice");

    for response_type in ["token", "code token", "id_token"] {
        let mut params = good_params(&client, &challenge);
        params[0] = ("response_type", response_type);
        let reply = browser.get(&authorize_query(&params));
        assert_error_redirect(
            &app,
            &reply,
            SPA_REDIRECT,
            "unsupported_response_type",
            Some("st4te"),
        );
    }

    let params: Vec<_> = good_params(&client, &challenge)
        .into_iter()
        .filter(|(k, _)| *k != "response_type")
        .collect();
    let reply = browser.get(&authorize_query(&params));
    assert_error_redirect(&app, &reply, SPA_REDIRECT, "invalid_request", Some("st4te"));
}

#[test]
fn plain_missing_and_malformed_pkce_challenges_are_refused_with_invalid_request() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (verifier, challenge) = pkce();
    let mut browser = app.browser();
    app.login(&mut browser, "alice");

    let with = |challenge: Option<&str>, method: Option<&str>| -> String {
        let mut params: Vec<(&str, &str)> = good_params(&client, "")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("code_challenge"))
            .collect();
        if let Some(c) = challenge {
            params.push(("code_challenge", c));
        }
        if let Some(m) = method {
            params.push(("code_challenge_method", m));
        }
        authorize_query(&params)
    };
    let long = "a".repeat(128);
    let cases = [
        ("plain method", with(Some(&verifier), Some("plain"))),
        (
            "plain method with an S256-shaped value",
            with(Some(&challenge), Some("plain")),
        ),
        ("method missing (means plain)", with(Some(&challenge), None)),
        ("unknown method", with(Some(&challenge), Some("S512"))),
        ("lower-case method", with(Some(&challenge), Some("s256"))),
        ("challenge missing", with(None, Some("S256"))),
        ("both missing", with(None, None)),
        ("too short", with(Some("abc"), Some("S256"))),
        (
            "44 characters",
            with(Some(&format!("{challenge}A")), Some("S256")),
        ),
        ("128 characters", with(Some(&long), Some("S256"))),
        (
            "not base64url",
            with(Some(&format!("+{}", &challenge[1..])), Some("S256")),
        ),
        (
            "padded",
            with(Some(&format!("{}=", &challenge[..42])), Some("S256")),
        ),
    ];
    for (what, url) in cases {
        let reply = browser.get(&url);
        assert_eq!(reply.status, 302, "{what}: {}", reply.body);
        assert_error_redirect(&app, &reply, SPA_REDIRECT, "invalid_request", Some("st4te"));
    }

    // Confidential clients need PKCE too.
    let (web, _) = exporter(&app);
    let params: Vec<_> = good_params(&web, &challenge)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let reply = browser.get(&authorize_query(&params));
    assert_error_redirect(&app, &reply, EXPORTER_REDIRECT, "invalid_request", Some("st4te"));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
}

// ---------------------------------------------------------------------------
// Scope

fn client_with_admin_scope(app: &TestApp) -> Client {
    app.create_client(ClientRegistration {
        name: "Admin console".into(),
        redirect_uris: vec![SPA_REDIRECT.into()],
        scopes: vec!["profile".into(), "notes:read".into(), "admin".into()],
        first_party: true,
        ..Default::default()
    })
    .0
}

#[test]
fn user_asking_for_the_admin_scope_gets_it_removed_and_an_admin_keeps_it() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("root", &["user", "admin"]);
    let client = client_with_admin_scope(&app);

    let tokens = app.code_flow(&client, "alice", &[("scope", "profile admin")]);
    assert_eq!(tokens["scope"], "profile");
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "profile");

    let tokens = app.code_flow(&client, "root", &[("scope", "profile admin")]);
    assert_eq!(tokens["scope"], "profile admin");
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "profile admin");

    // What the client may not have is dropped as well.
    let tokens = app.code_flow(&client, "alice", &[("scope", "notes:read notes:write")]);
    assert_eq!(tokens["scope"], "notes:read");
}

#[test]
fn request_that_narrows_to_no_scope_is_refused_with_invalid_scope() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = client_with_admin_scope(&app);
    let mut browser = app.browser();
    let (_, challenge) = pkce();

    for scope in ["admin", "email", "notes:write"] {
        let url = authorize_url(&client, &challenge, &[("scope", scope)]);
        let first = browser.get(&url);
        let reply = sign_in_if_asked(&mut browser, first, "alice");
        assert_error_redirect(&app, &reply, SPA_REDIRECT, "invalid_scope", Some("st4te"));
    }
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
}

#[test]
fn iss_on_success_and_error_redirects_is_the_issuer_from_the_metadata() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let issuer = app.http().get("/.well-known/oauth-authorization-server").json()["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(issuer, app.issuer);

    let mut browser = app.browser();
    let (_, challenge) = pkce();
    let success = app.authorize(&mut browser, &authorize_url(&client, &challenge, &[]), "alice");
    assert!(has_query(&success, "code"), "{success}");
    assert_eq!(query_value(&success, "iss"), Some(issuer.clone()));

    let error = browser.get(&authorize_url(&client, &challenge, &[("scope", "email")]));
    let back = error.location(&app.base).unwrap();
    assert!(has_query(&back, "error"), "{back}");
    assert_eq!(query_value(&back, "iss"), Some(issuer));
}

// ---------------------------------------------------------------------------
// Login

#[test]
fn login_with_a_missing_or_wrong_csrf_token_is_refused_with_403_and_no_session() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);

    let mut other = app.browser();
    let others_token = other.get("/login").input_value("csrf_token").unwrap();

    let mut browser = app.browser();
    let page = browser.get("/login");
    assert!(browser.cookies.contains_key("login"), "{:?}", page.headers);
    let forged = "A".repeat(43);
    for (what, token) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong", Some(forged.as_str())),
        ("another browser's", Some(others_token.as_str())),
    ] {
        let mut fields = vec![("username", "alice"), ("password", PASSWORD)];
        if let Some(token) = token {
            fields.push(("csrf_token", token));
        }
        let reply = browser.post_form("/login", &fields);
        assert_eq!(reply.status, 403, "{what} CSRF token: {}", reply.body);
        assert_eq!(reply.header("location"), None, "{what}");
        assert!(
            set_cookie(&reply, "session").is_none(),
            "{what}: {:?}",
            reply.headers
        );
        assert!(!browser.cookies.contains_key("session"), "{what}");
    }

    // A valid token without the cookie it is bound to is no good either.
    let token = page.input_value("csrf_token").unwrap();
    let mut cookieless = app.browser();
    let reply = cookieless.post_form(
        "/login",
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(set_cookie(&reply, "session").is_none());
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM browser_sessions"), 0);
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_response() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    let csrf = browser.get("/login").input_value("csrf_token").unwrap();

    let unknown = browser.post_form(
        "/login",
        &[
            ("username", "mallory"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    let wrong = browser.post_form(
        "/login",
        &[
            ("username", "alice"),
            ("password", "not the right password at all"),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert!(unknown.body.contains("Incorrect username or password"));
    // The form is filled in again with what was typed; apart from that the
    // pages are the same, byte for byte.
    let normalized = |reply: &Reply, typed: &str| {
        reply
            .body
            .replace(&format!("value=\"{typed}\""), "value=\"TYPED\"")
    };
    assert_eq!(normalized(&unknown, "mallory"), normalized(&wrong, "alice"));
    let comparable = |reply: &Reply| {
        let mut headers: Vec<_> = reply
            .headers
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id" | "content-length"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.sort();
        headers
    };
    assert_eq!(comparable(&unknown), comparable(&wrong));
    assert!(set_cookie(&unknown, "session").is_none());
    assert!(set_cookie(&wrong, "session").is_none());
}

#[test]
fn login_replaces_a_planted_session_cookie_and_the_old_value_no_longer_signs_in() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[]);
    let signed_in = |value: &str| {
        let mut probe = app.browser();
        probe.cookies.insert("session".into(), value.to_owned());
        let reply = probe.get(&url);
        let back = reply.location(&app.base).unwrap();
        has_query(&back, "code")
    };

    // A value the attacker made up.
    let planted = random_cookie_value();
    let mut victim = app.browser();
    victim.cookies.insert("session".into(), planted.clone());
    app.login(&mut victim, "alice");
    let issued = victim.cookies.get("session").cloned().unwrap();
    assert_ne!(issued, planted);
    assert!(signed_in(&issued));
    assert!(!signed_in(&planted));

    // A live session of the attacker's own, planted before the victim signs
    // in: the victim gets a new id and the planted one stops working.
    let mut attacker = app.browser();
    app.login(&mut attacker, "bob");
    let attackers = attacker.cookies.get("session").cloned().unwrap();
    let mut victim = app.browser();
    let csrf = victim.get("/login").input_value("csrf_token").unwrap();
    victim.cookies.insert("session".into(), attackers.clone());
    let reply = victim.post_form(
        "/login",
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    let fresh = victim.cookies.get("session").cloned().unwrap();
    assert_ne!(fresh, attackers);
    assert!(signed_in(&fresh));
    assert!(!signed_in(&attackers), "the planted session still signs in");
    let home = victim.get("/");
    assert!(home.body.contains("signed in as alice"), "{}", home.body);
}

#[test]
fn login_return_to_outside_the_authorization_endpoint_goes_home() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    for target in ["https://evil.example/", "//evil.example/", "/logout"] {
        let mut browser = app.browser();
        let login = format!(
            "/login?return_to={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        let page = browser.get(&login);
        let csrf = page.input_value("csrf_token").unwrap();
        let action = page.form_action().unwrap();
        let reply = browser.post_form(
            &action,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        );
        assert_eq!(reply.status, 303, "{target}: {}", reply.body);
        assert_eq!(reply.header("location"), Some("/"), "{target}");
    }
}

// ---------------------------------------------------------------------------
// Headers, cookies and redirect codes

#[test]
fn login_consent_and_error_pages_carry_security_headers() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let spa = app.spa_client();
    let (web, _) = exporter(&app);
    let (_, challenge) = pkce();
    let mut browser = app.browser();

    // The login page of a pending authorization request may post to the
    // server itself and end up at the client.
    let to_login = browser.get(&authorize_url(&spa, &challenge, &[]));
    let login = browser.get(to_login.header("location").unwrap());
    assert_eq!(login.status, 200);
    assert_page_security_headers(&login, "login page");
    let form_action = csp_directive(&login, "form-action").unwrap();
    assert!(form_action.contains(&"'self'".to_owned()), "{form_action:?}");
    assert!(
        form_action.contains(&"http://127.0.0.1:5173".to_owned()),
        "{form_action:?}"
    );

    let first = browser.get(&authorize_url(&web, &challenge, &[]));
    let consent = sign_in_if_asked(&mut browser, first, "alice");
    assert!(is_consent_page(&consent));
    assert_page_security_headers(&consent, "consent page");
    let form_action = csp_directive(&consent, "form-action").unwrap();
    assert!(form_action.contains(&"'self'".to_owned()), "{form_action:?}");
    assert!(
        form_action.contains(&"https://exporter.example".to_owned()),
        "{form_action:?}"
    );

    let mut params = good_params(&spa, &challenge);
    params[2] = ("redirect_uri", "https://evil.example/cb");
    let error = browser.get(&authorize_query(&params));
    assert_error_page(&error, "bad redirect URI");
    assert_page_security_headers(&error, "error page");
    assert_page_security_headers(&app.browser().get("/login"), "plain login page");
    // No HSTS for an http issuer on loopback.
    assert_eq!(login.header("strict-transport-security"), None);
}

#[test]
fn cookies_are_http_only_secure_and_same_site_lax() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    let page = browser.get("/login");
    let csrf = page.input_value("csrf_token").unwrap();
    let login_cookie = set_cookie(&page, "login").expect("pre-login cookie");
    let session_reply = browser.post_form(
        "/login",
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(session_reply.status, 303);
    let session_cookie = set_cookie(&session_reply, "session").expect("session cookie");
    for cookie in [login_cookie, session_cookie] {
        let attributes: Vec<String> = cookie
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        for wanted in ["httponly", "secure", "samesite=lax", "path=/"] {
            assert!(attributes.contains(&wanted.to_owned()), "{cookie}: no {wanted}");
        }
    }
}

#[test]
fn https_issuer_adds_hsts_and_host_prefixed_cookies() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_ISSUER".into(), "https://auth.example.test".into());
    });
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    let page = browser.get("/login");
    assert!(
        page.header("strict-transport-security")
            .is_some_and(|h| h.contains("max-age=")),
        "{:?}",
        page.headers
    );
    assert!(set_cookie(&page, "__Host-login").is_some(), "{:?}", page.headers);
    let csrf = page.input_value("csrf_token").unwrap();
    let reply = browser.post_form(
        "/login",
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    let cookie = set_cookie(&reply, "__Host-session").expect("__Host-session");
    assert!(cookie.contains("Secure") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
}

#[test]
fn redirects_are_302_after_a_get_and_303_after_a_post() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let spa = app.spa_client();
    let (web, _) = exporter(&app);
    let (_, challenge) = pkce();
    let mut browser = app.browser();

    let to_login = browser.get(&authorize_url(&spa, &challenge, &[]));
    assert_eq!(to_login.status, 302, "GET /authorize signed out");
    let location = to_login.header("location").unwrap().to_owned();
    assert!(location.starts_with("/login?return_to="), "{location}");
    let page = browser.get(&location);
    let csrf = page.input_value("csrf_token").unwrap();
    let action = page.form_action().unwrap();
    let posted = browser.post_form(
        &action,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(posted.status, 303, "POST /login");
    assert!(posted.header("location").unwrap().starts_with("/authorize?"));

    let code = browser.get(posted.header("location").unwrap());
    assert_eq!(code.status, 302, "GET /authorize signed in");
    let error = browser.get(&authorize_url(&spa, &challenge, &[("scope", "email")]));
    assert_eq!(error.status, 302, "GET /authorize error");

    let consent = browser.get(&authorize_url(&web, &challenge, &[("scope", "profile")]));
    let approved = decide_consent(&mut browser, &consent, "approve");
    assert_eq!(approved.status, 303, "consent approved");
    let consent = browser.get(&authorize_url(&web, &challenge, &[("scope", "notes:write")]));
    let denied = decide_consent(&mut browser, &consent, "deny");
    assert_eq!(denied.status, 303, "consent denied");
}

// ---------------------------------------------------------------------------
// Encoding and sessions

#[test]
fn state_comes_back_exactly_and_a_registered_query_is_kept() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let registered = "http://127.0.0.1:5173/callback?tenant=a%20b&x=1";
    let client = app
        .create_client(ClientRegistration {
            name: "Tenant SPA".into(),
            redirect_uris: vec![registered.into()],
            first_party: true,
            ..Default::default()
        })
        .0;
    let state = "a b&c=d/é?#%41+";
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let mut params = good_params(&client, &challenge);
    params[3] = ("state", state);

    let first = browser.get(&authorize_query(&params));
    let reply = sign_in_if_asked(&mut browser, first, "alice");
    assert_eq!(reply.status, 302, "{}", reply.body);
    let back = reply.location(&app.base).unwrap();
    assert_eq!(query_value(&back, "state").as_deref(), Some(state), "{back}");
    assert_eq!(query_value(&back, "tenant").as_deref(), Some("a b"), "{back}");
    assert_eq!(query_value(&back, "x").as_deref(), Some("1"), "{back}");
    assert!(has_query(&back, "code"), "{back}");
    assert!(
        reply.header("location").unwrap().starts_with(registered),
        "the registered URI was not kept as is: {}",
        reply.header("location").unwrap()
    );

    params.push(("scope", "email"));
    let error = browser.get(&authorize_query(&params));
    let back = error.location(&app.base).unwrap();
    assert_eq!(query_value(&back, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(query_value(&back, "state").as_deref(), Some(state), "{back}");
    assert_eq!(query_value(&back, "tenant").as_deref(), Some("a b"), "{back}");
}

#[test]
fn idle_or_expired_browser_session_no_longer_signs_in() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[]);
    let goes_to_login = |browser: &mut Browser| {
        let reply = browser.get(&url);
        reply.header("location").is_some_and(|l| l.starts_with("/login"))
    };

    let mut idle = app.browser();
    app.login(&mut idle, "alice");
    assert!(!goes_to_login(&mut idle));
    // Default idle lifetime: one hour.
    app.sql_exec("UPDATE browser_sessions SET last_seen_at = now() - interval '61 minutes'");
    assert!(goes_to_login(&mut idle), "an idle session still signs in");

    let mut old = app.browser();
    app.login(&mut old, "alice");
    assert!(!goes_to_login(&mut old));
    app.sql_exec("UPDATE browser_sessions SET expires_at = now() - interval '1 second'");
    assert!(goes_to_login(&mut old), "an expired session still signs in");
}

#[test]
fn failed_logins_take_as_long_for_an_unknown_user_as_for_a_wrong_password() {
    // A generous bound on the fastest of a few tries (load only adds time):
    // without a dummy hash an unknown user is answered many times faster
    // than a password check.
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    let csrf = browser.get("/login").input_value("csrf_token").unwrap();
    let mut timed = |username: &str| {
        let samples: Vec<std::time::Duration> = (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                let reply = browser.post_form(
                    "/login",
                    &[
                        ("username", username),
                        ("password", "not the right password at all"),
                        ("csrf_token", &csrf),
                    ],
                );
                assert_eq!(reply.status, 200);
                started.elapsed()
            })
            .collect();
        samples.into_iter().min().unwrap()
    };
    let wrong_password = timed("alice");
    let unknown_user = timed("mallory");
    assert!(
        unknown_user * 3 >= wrong_password,
        "unknown user {unknown_user:?} vs wrong password {wrong_password:?}"
    );
}
