//! Bearer-token validation over HTTP (RFC 6750, RFC 9068, RFC 8725): every
//! claim wrong in turn, forged signatures, and where the token may come from.

use josekit::jwk::KeyPair as _;
use josekit::jws::{HS256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};

use crate::helpers::*;

fn me(s: &Setup, token: &str) -> Reply {
    get(&s.url("/api/me"), Some(token))
}

fn profile(s: &Setup) -> Value {
    s.claims("u1", "profile")
}

#[test]
fn a_valid_token_is_accepted() {
    let s = Setup::new();
    let reply = me(&s, &s.key.sign(&profile(&s)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["sub"], "u1");
    // The hand-rolled signer used by the negative tests below makes
    // acceptable tokens too, so their refusals are about the claim alone.
    let raw = s.key.sign_raw(&s.key.header(), &profile(&s));
    assert_eq!(me(&s, &raw).status, 200);
}

#[test]
fn a_token_from_another_issuer_is_refused_with_invalid_token() {
    let s = Setup::new();
    let claims = profile(&s);
    for iss in [
        json!(format!("{}/", s.issuer.url)),
        json!("https://evil.example.com"),
        json!(s.issuer.url.to_uppercase()),
        json!([s.issuer.url]),
    ] {
        let token = s.key.sign_raw(&s.key.header(), &with(&claims, "iss", iss));
        assert_invalid_token(&me(&s, &token));
    }
    assert_invalid_token(&me(&s, &s.key.sign(&without(&claims, "iss"))));
}

#[test]
fn a_token_for_another_audience_is_refused_with_invalid_token() {
    let s = Setup::new();
    let claims = with(&profile(&s), "aud", json!("http://127.0.0.1:9999/api"));
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
    let claims = with(&profile(&s), "aud", json!(format!("{AUDIENCE}/")));
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
}

#[test]
fn an_audience_array_without_ours_is_refused() {
    let s = Setup::new();
    let claims = with(
        &profile(&s),
        "aud",
        json!(["http://127.0.0.1:9999/api", "https://other.example.com"]),
    );
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
    let claims = with(&profile(&s), "aud", json!([]));
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
}

#[test]
fn an_audience_array_with_ours_is_accepted() {
    let s = Setup::new();
    let claims = with(
        &profile(&s),
        "aud",
        json!(["http://127.0.0.1:9999/api", AUDIENCE]),
    );
    let reply = me(&s, &s.key.sign(&claims));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_token_without_aud_is_refused() {
    let s = Setup::new();
    assert_invalid_token(&me(&s, &s.key.sign(&without(&profile(&s), "aud"))));
}

#[test]
fn a_token_whose_typ_is_not_at_jwt_is_refused() {
    let s = Setup::new();
    let claims = profile(&s);
    let kid = Some(s.key.kid.as_str());
    assert_invalid_token(&me(&s, &s.key.sign_with_header(&claims, None, kid)));
    for typ in ["JWT", "jwt", "at+jwt+x", "application/jwt"] {
        let token = s.key.sign_with_header(&claims, Some(typ), kid);
        assert_invalid_token(&me(&s, &token));
    }
}

#[test]
fn the_media_type_form_of_at_jwt_is_accepted() {
    // RFC 9068 section 2.1 allows "application/at+jwt" too.
    let s = Setup::new();
    let token = s
        .key
        .sign_with_header(&profile(&s), Some("application/at+jwt"), Some(&s.key.kid));
    assert_eq!(me(&s, &token).status, 200);
}

#[test]
fn a_token_expired_beyond_the_leeway_is_refused() {
    let s = Setup::new();
    let now = now();
    let claims = with(&profile(&s), "iat", json!(now - 600));
    let claims = with(&claims, "exp", json!(now - 31 - 5));
    let reply = me(&s, &s.key.sign(&claims));
    assert_invalid_token(&reply);
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error_description=\"token has expired\"")),
        "{reply:?}"
    );
}

#[test]
fn a_token_expired_within_the_leeway_is_accepted() {
    let s = Setup::new();
    let now = now();
    let claims = with(&profile(&s), "iat", json!(now - 600));
    let claims = with(&claims, "exp", json!(now - 10));
    let reply = me(&s, &s.key.sign(&claims));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_token_without_exp_is_refused() {
    let s = Setup::new();
    assert_invalid_token(&me(&s, &s.key.sign(&without(&profile(&s), "exp"))));
    // Not a number is as good as absent.
    let claims = with(&profile(&s), "exp", json!((now() + 300).to_string()));
    assert_invalid_token(&me(&s, &s.key.sign_raw(&s.key.header(), &claims)));
}

#[test]
fn a_token_not_valid_before_a_future_nbf_is_refused() {
    let s = Setup::new();
    let claims = with(&profile(&s), "nbf", json!(now() + 120));
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
}

#[test]
fn an_nbf_within_the_leeway_is_accepted() {
    let s = Setup::new();
    let claims = with(&profile(&s), "nbf", json!(now() + 10));
    assert_eq!(me(&s, &s.key.sign(&claims)).status, 200);
}

#[test]
fn a_token_issued_in_the_future_is_refused() {
    let s = Setup::new();
    let claims = with(&profile(&s), "iat", json!(now() + 120));
    assert_invalid_token(&me(&s, &s.key.sign(&claims)));
}

#[test]
fn a_token_missing_a_required_claim_is_refused() {
    let s = Setup::new();
    for claim in ["sub", "jti", "client_id", "iat"] {
        let reply = me(&s, &s.key.sign(&without(&profile(&s), claim)));
        assert_eq!(reply.status, 401, "without {claim}: {reply:?}");
        assert_invalid_token(&reply);
    }
}

#[test]
fn alg_none_is_refused() {
    let s = Setup::new();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": s.key.kid});
        let token = raw_jwt(&header, &profile(&s), b"");
        assert_invalid_token(&me(&s, &token));
    }
}

fn hs256_token(s: &Setup, secret: &[u8]) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id(&s.key.kid);
    let payload = JwtPayload::from_map(profile(s).as_object().cloned().unwrap()).unwrap();
    let signer = HS256.signer_from_bytes(secret).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    use base64::Engine as _;
    let s = Setup::new();
    let jwk = s.key.jwk();
    let decode = |name: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap())
            .unwrap()
    };
    let x_y = [decode("x"), decode("y")].concat();
    let uncompressed = [vec![0x04], x_y.clone()].concat();
    let secrets = [
        x_y,
        uncompressed,
        s.key.pair.to_der_public_key(),
        s.key.pair.to_pem_public_key(),
        jwk.to_string().into_bytes(),
    ];
    for secret in secrets {
        assert_invalid_token(&me(&s, &hs256_token(&s, &secret)));
    }
}

#[test]
fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let s = Setup::new();
    let impostor = TestKey::new(&s.key.kid);
    assert_invalid_token(&me(&s, &impostor.sign(&profile(&s))));
}

#[test]
fn a_token_whose_payload_was_changed_after_signing_is_refused() {
    let s = Setup::new();
    let token = s.key.sign(&profile(&s));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = with(&profile(&s), "sub", json!("admin"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_invalid_token(&me(&s, &tampered));
}

#[test]
fn a_token_without_kid_is_refused() {
    let s = Setup::new();
    let token = s.key.sign_with_header(&profile(&s), Some("at+jwt"), None);
    assert_invalid_token(&me(&s, &token));
}

#[test]
fn a_malformed_bearer_token_is_invalid() {
    let s = Setup::new();
    for token in ["abc", "a.b.c", "....", "eyJ.eyJ.sig"] {
        assert_invalid_token(&me(&s, token));
    }
}

#[test]
fn a_request_without_a_token_gets_a_challenge_without_an_error_code() {
    let s = Setup::new();
    assert_missing_token(&get(&s.url("/api/me"), None));
    assert_missing_token(&get(&s.url("/api/notes"), None));
}

#[test]
fn a_token_in_the_query_string_is_ignored() {
    let s = Setup::new();
    let token = s.key.sign(&profile(&s));
    let reply = get(&s.url(&format!("/api/me?access_token={token}")), None);
    assert_missing_token(&reply);
}

#[test]
fn a_token_in_a_form_body_is_ignored() {
    let s = Setup::new();
    let token = s.token("u1");
    let reply = request(
        "POST",
        &s.url("/api/notes"),
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&format!("access_token={token}&title=t&body=b")),
    );
    assert_missing_token(&reply);
}

#[test]
fn a_basic_authorization_header_counts_as_no_token() {
    let s = Setup::new();
    let token = s.key.sign(&profile(&s));
    for value in [
        format!("Basic {}", b64url(b"u1:secret")),
        format!("Basic {token}"),
        token.clone(),
        format!("Bearer{token}"),
        "Bearer ".to_owned(),
    ] {
        let reply = request("GET", &s.url("/api/me"), None, &[("Authorization", &value)], None);
        assert_missing_token(&reply);
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    // RFC 7235 section 2.1: auth-scheme names are case-insensitive.
    let s = Setup::new();
    let token = s.key.sign(&profile(&s));
    let reply = request(
        "GET",
        &s.url("/api/me"),
        None,
        &[("Authorization", &format!("bearer {token}"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_token_with_an_unknown_critical_header_is_refused() {
    // RFC 7515 section 4.1.11: a recipient that does not understand a
    // `crit` extension must reject the JWS.
    let s = Setup::new();
    let mut header = s.key.header();
    header["crit"] = json!(["urn:example:must-understand"]);
    header["urn:example:must-understand"] = json!(true);
    assert_invalid_token(&me(&s, &s.key.sign_raw(&header, &profile(&s))));
}

#[test]
fn an_embedded_jwk_or_jku_header_is_not_trusted() {
    // RFC 8725 section 3.10 / the "jwk header" attack: only keys from the
    // issuer's JWKS verify tokens.
    let s = Setup::new();
    let attacker = TestKey::new(&s.key.kid);
    let mut header = attacker.header();
    header["jwk"] = attacker.jwk();
    assert_invalid_token(&me(&s, &attacker.sign_raw(&header, &profile(&s))));
    let mut header = attacker.header();
    header["jku"] = json!("https://evil.example.com/jwks");
    assert_invalid_token(&me(&s, &attacker.sign_raw(&header, &profile(&s))));
}

#[test]
fn an_empty_subject_is_refused() {
    let s = Setup::new();
    for claim in ["sub", "client_id", "jti"] {
        let token = s
            .key
            .sign(&with(&s.claims("u1", ALL_USER_SCOPES), claim, json!("")));
        assert_invalid_token(&me(&s, &token));
    }
}

#[test]
fn the_leeway_is_configurable() {
    let key = TestKey::new("k1");
    let issuer = FakeIssuer::start(&[&key]);
    let app = spawn_app_with(&issuer.url, |env| {
        env.insert("RESOURCE_LEEWAY_SECONDS".into(), "0".into());
    });
    app.wait_ready();
    let now = now();
    let base = claims(&issuer.url, "u1", "profile", &["user"]);
    let expired = with(&with(&base, "iat", json!(now - 600)), "exp", json!(now - 5));
    assert_invalid_token(&get(&app.url("/api/me"), Some(&key.sign(&expired))));
    let early = with(&base, "nbf", json!(now + 10));
    assert_invalid_token(&get(&app.url("/api/me"), Some(&key.sign(&early))));
    assert_eq!(get(&app.url("/api/me"), Some(&key.sign(&base))).status, 200);
}

#[test]
fn an_oversized_token_is_refused_without_verification() {
    let s = Setup::new();
    let claims = with(&profile(&s), "padding", json!("x".repeat(10_000)));
    let reply = me(&s, &s.key.sign(&claims));
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_invalid_token(&reply);
}

#[test]
fn authentication_is_decided_before_the_body_is_judged() {
    // A token with an unknown kid is checked asynchronously (the JWKS may be
    // refetched); a bad body must not answer first.
    let s = Setup::new();
    let claims = s.claims("u1", ALL_USER_SCOPES);
    let stranger = s.key.sign_with_header(&claims, Some("at+jwt"), Some("k-unknown"));
    let big = json!({"title": "t", "body": "b".repeat(70_000)}).to_string();
    for (content_type, body) in [
        ("text/plain", "x"),
        ("application/json", "{"),
        ("application/json", big.as_str()),
        ("application/json", "{\"title\": \"\", \"body\": \"\"}"),
    ] {
        let reply = request(
            "POST",
            &s.url("/api/notes"),
            Some(&stranger),
            &[("Content-Type", content_type)],
            Some(body),
        );
        assert_invalid_token(&reply);
    }
}
