//! Property tests for the parsers that see untrusted input first: the
//! form/query parser of the protocol endpoints (RFC 6749 section 3.1: empty
//! means omitted, a repeated parameter is an error) and redirect URIs
//! (OAuth 2.1 section 2.3.1 and RFC 9700 section 4.1.3: registered URIs are
//! compared as exact strings).
//!
//! Bounded so the binary runs in a few seconds in debug mode; failures are
//! not persisted, so a found case must be copied into a plain `#[test]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use auth_server::domain::RedirectUri;
use auth_server::model::Client;
use auth_server::protocol::authorize::resolve_target;
use auth_server::protocol::client_auth::ClientDirectory;
use auth_server::protocol::{Params, StoreError};
use auth_server::registration::ClientRegistration;
use proptest::prelude::*;
use proptest::sample::{Index, select};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Text that looks like a form body often enough to reach the decoder's
/// corners: separators, `+`, broken and valid percent escapes.
fn form_like() -> impl Strategy<Value = String> {
    "([a-z_]{0,6}|%[0-9A-Fa-f]{0,2}|%[EeFf][0-9A-Fa-f]%[89AaBb][0-9A-Fa-f]|[=&+;#? ]|\\PC){0,24}"
}

/// Names from a small set, so that repeats are common.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["client_id", "redirect_uri", "scope", "state", "code", "a"]).prop_map(str::to_owned),
        "[a-z]{0,2}",
        "\\PC{0,4}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9]{1,4}", "\\PC{0,8}", "[&=+%# ]{1,3}"]
}

/// What RFC 6749 section 3.1 says the parser must report for `pairs`.
struct Expected {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

fn expected(pairs: &[(String, String)]) -> Expected {
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut repeated = Vec::new();
    for (n, _) in pairs {
        let c = count.entry(n).or_default();
        *c += 1;
        if *c == 2 {
            repeated.push(n.clone());
        }
    }
    let values = pairs
        .iter()
        .filter(|(n, v)| count[n.as_str()] == 1 && !v.is_empty())
        .cloned()
        .collect();
    Expected { values, repeated }
}

fn assert_matches_rules(params: &Params, pairs: &[(String, String)]) {
    let want = expected(pairs);
    for (n, _) in pairs {
        assert_eq!(
            params.get(n),
            want.values.get(n).map(String::as_str),
            "get({n:?})"
        );
        assert_eq!(
            params.is_repeated(n),
            want.repeated.contains(n),
            "is_repeated({n:?})"
        );
    }
    assert_eq!(params.first_repeated(), want.repeated.first().map(String::as_str));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parsing_any_text_never_panics(s in any::<String>(), probe in "\\PC{0,4}") {
        let params = Params::parse(&s);
        let _ = (params.get(&probe), params.is_repeated(&probe), params.first_repeated());
    }

    #[test]
    fn parsing_form_like_text_never_panics(s in form_like()) {
        let params = Params::parse(&s);
        // Whatever the decoder yields, the parser's rules hold for it.
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(s.as_bytes()).into_owned().collect();
        assert_matches_rules(&params, &pairs);
    }

    #[test]
    fn parsing_bytes_as_lossy_utf8_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let params = Params::parse(&text);
        let _ = (params.get("scope"), params.first_repeated());
    }

    #[test]
    fn parameters_follow_the_rules_for_empty_and_repeated_names(
        pairs in prop::collection::vec((name(), value()), 0..12),
    ) {
        let refs = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        assert_matches_rules(&Params::parse(&form_encode(refs)), &pairs);
        assert_matches_rules(&Params::from_pairs(pairs.clone()), &pairs);
    }

    #[test]
    fn repeated_parameter_is_never_returned(
        pairs in prop::collection::vec((name(), value()), 1..10),
        which in any::<Index>(),
        at in any::<Index>(),
        again in value(),
    ) {
        let repeated = pairs[which.index(pairs.len())].0.clone();
        let mut with_repeat = pairs.clone();
        with_repeat.insert(at.index(pairs.len() + 1), (repeated.clone(), again));
        let refs = with_repeat.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let params = Params::parse(&form_encode(refs));
        prop_assert!(params.is_repeated(&repeated));
        prop_assert_eq!(params.get(&repeated), None);
        prop_assert!(params.first_repeated().is_some());
    }

    #[test]
    fn empty_value_is_treated_as_absent(
        n in "[a-z_]{1,12}",
        others in prop::collection::btree_map("[A-Z]{1,4}", "[a-z0-9]{1,4}", 0..4),
        bare in any::<bool>(),
    ) {
        // `name=` and a bare `name` both decode to an empty value.
        let empty = if bare { n.clone() } else { format!("{n}=") };
        let rest = form_encode(others.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let params = Params::parse(&format!("{rest}&{empty}"));
        prop_assert_eq!(params.get(&n), None);
        prop_assert!(!params.is_repeated(&n));
        prop_assert_eq!(params.first_repeated(), None);
        for (k, v) in &others {
            prop_assert_eq!(params.get(k), Some(v.as_str()));
        }
    }

    #[test]
    fn url_encoded_unique_pairs_round_trip(
        pairs in prop::collection::btree_map(any::<String>(), "\\PC{1,16}|.{1,8}", 0..8),
    ) {
        let params = Params::parse(&form_encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        prop_assert_eq!(params.first_repeated(), None);
        for (k, v) in &pairs {
            prop_assert_eq!(params.get(k), Some(v.as_str()));
        }
    }
}

// ---------------------------------------------------------------------------
// Redirect URIs.

/// Pieces that put URL parsers in trouble: odd schemes and hosts, IPv4
/// shorthands, userinfo, ports out of range, fragments, whitespace.
fn uri_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        6 => select(vec!["https", "http"]).prop_map(str::to_owned),
        1 => select(vec!["HTTPS", "Http", "ftp", "javascript", "data", "file", ""]).prop_map(str::to_owned),
        1 => "[a-z][a-z0-9+.-]{0,6}",
    ];
    let separator = prop_oneof![
        6 => Just("://"),
        1 => select(vec![":", ":/", ":///", "//", "", ":\\\\"]),
    ];
    let userinfo = prop::option::weighted(0.1, "[a-z%:@]{0,5}@");
    let host = prop_oneof![
        4 => select(vec![
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1",
            "0x7f.1",
            "2130706433",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::1",
            "app.example.com",
            "xn--nxasmq6b.example",
            "",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z0-9.%-]{0,12}",
        1 => "\\PC{0,6}",
    ];
    let port = prop::option::weighted(0.3, ":[0-9]{0,6}");
    let path = "(/[a-zA-Z0-9._~%!$&'()*+,;=:@\\\\-]{0,8}){0,3}";
    let query = prop::option::weighted(0.3, "\\?\\PC{0,10}");
    let fragment = prop::option::weighted(0.1, "#\\PC{0,6}");
    let junk = prop::option::weighted(0.1, "[ \t\n\r\u{0}\u{7f}\u{85}\u{a0}\u{2028}]");
    (
        scheme,
        separator,
        userinfo,
        host,
        port,
        path,
        query,
        fragment,
        junk,
        any::<Index>(),
    )
        .prop_map(
            |(scheme, sep, user, host, port, path, query, fragment, junk, at)| {
                let mut s = format!(
                    "{scheme}{sep}{}{host}{}{path}{}{}",
                    user.unwrap_or_default(),
                    port.unwrap_or_default(),
                    query.unwrap_or_default(),
                    fragment.unwrap_or_default(),
                );
                if let Some(junk) = junk {
                    let boundaries: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
                    s.insert_str(boundaries[at.index(boundaries.len())], &junk);
                }
                s
            },
        )
}

/// URIs a client could register: https anywhere, http on loopback.
fn registered_uri() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        "https://[a-z]{1,8}(\\.[a-z]{1,8}){1,2}",
        select(vec![
            "http://127.0.0.1",
            "http://localhost",
            "http://[::1]",
            "https://App.Example.com"
        ])
        .prop_map(str::to_owned),
    ];
    let port = prop::option::of(1u16..=65535);
    let path = "(/[a-zA-Z0-9._~-]{1,8}){0,3}/?";
    let query = prop::option::of("\\?[a-z]{1,5}=[a-zA-Z0-9]{0,5}");
    (base, port, path, query).prop_map(|(base, port, path, query)| {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{base}{port}{path}{}", query.unwrap_or_default())
    })
}

struct Clients(HashMap<String, Client>);

impl ClientDirectory for Clients {
    fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.0.get(client_id).cloned())
    }
}

fn client_with(uri: &str) -> Client {
    ClientRegistration {
        name: "app".into(),
        redirect_uris: vec![uri.to_owned()],
        ..Default::default()
    }
    .check("https://api.example.com")
    .expect("a registrable client")
    .client
}

/// Whether `candidate`, sent as the authorization request's
/// `redirect_uri`, is accepted anywhere a redirect URI is compared.
fn accepted_by(client: &Client, candidate: &str) -> bool {
    let by_lookup = client.redirect_uri(candidate).is_some();
    let by_logout = client.accepts_post_logout_redirect(candidate);
    let mut clients = Clients([(client.client_id.clone(), client.clone())].into());
    let query = form_encode([
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", candidate),
    ]);
    let by_flow = resolve_target(&Params::parse(&query), &mut clients)
        .unwrap()
        .is_ok();
    assert_eq!((by_lookup, by_logout), (by_flow, by_flow), "{candidate:?}");
    by_flow
}

/// Single-character changes an attacker would try: one letter's case, a
/// trailing slash added or removed, a query added, the port changed.
fn near_misses(uri: &str, letter: usize) -> Vec<String> {
    let mut out = Vec::new();
    let letters: Vec<usize> = uri
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    if !letters.is_empty() {
        let i = letters[letter % letters.len()];
        let mut s = uri.to_owned();
        let c = s.remove(i);
        let flipped = if c.is_ascii_uppercase() {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        };
        s.insert(i, flipped);
        out.push(s);
    }
    out.push(format!("{uri}/"));
    if let Some(stripped) = uri.strip_suffix('/') {
        out.push(stripped.to_owned());
    }
    out.push(format!("{uri}{}x=1", if uri.contains('?') { '&' } else { '?' }));
    out.push(format!("{uri}?"));
    out.push(format!("{uri}#"));
    let url = url::Url::parse(uri).unwrap();
    let authority_end = uri[url.scheme().len() + 3..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| i + url.scheme().len() + 3);
    let (authority, rest) = uri.split_at(authority_end);
    match url.port() {
        Some(p) => {
            let cut = authority.rfind(':').unwrap();
            out.push(format!("{}:{}{rest}", &authority[..cut], p.wrapping_add(1)));
            out.push(format!("{}{rest}", &authority[..cut]));
            out.push(format!("{}:0{p}{rest}", &authority[..cut]));
        }
        None => {
            // The scheme's default port spelt out is the same URL, but not
            // the same string.
            let default = url.port_or_known_default().unwrap();
            out.push(format!("{authority}:{default}{rest}"));
            out.push(format!("{authority}:8443{rest}"));
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redirect_uri_parsing_never_panics(s in any::<String>()) {
        let _ = RedirectUri::parse(&s).map(|u| u.origin());
    }

    #[test]
    fn accepted_redirect_uri_is_absolute_without_fragment_and_reparses_to_itself(s in uri_like()) {
        if let Ok(uri) = RedirectUri::parse(&s) {
            prop_assert_eq!(uri.as_str(), s.as_str());
            let url = url::Url::parse(uri.as_str()).unwrap();
            prop_assert!(!url.cannot_be_a_base());
            prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()));
            prop_assert!(matches!(url.scheme(), "https" | "http"));
            prop_assert_eq!(url.fragment(), None);
            prop_assert!(!s.contains('#'));
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert!(uri.origin().is_some());
            let again = RedirectUri::parse(uri.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), s.as_str());
            prop_assert_eq!(again.to_string(), s);
        }
    }

    #[test]
    fn registered_redirect_uri_matches_itself(uri in registered_uri()) {
        prop_assert!(RedirectUri::parse(&uri).is_ok(), "{}", uri);
        prop_assert!(accepted_by(&client_with(&uri), &uri));
    }

    #[test]
    fn near_miss_of_a_registered_redirect_uri_does_not_match(
        uri in registered_uri(),
        letter in any::<usize>(),
    ) {
        let client = client_with(&uri);
        for candidate in near_misses(&uri, letter) {
            prop_assert_ne!(&candidate, &uri);
            prop_assert!(!accepted_by(&client, &candidate), "{} matched {}", candidate, uri);
        }
    }

    #[test]
    fn any_single_character_change_of_a_registered_redirect_uri_does_not_match(
        uri in registered_uri(),
        at in any::<Index>(),
        edit in 0..3u8,
        c in prop_oneof![any::<char>(), "[a-zA-Z0-9/:?&=#%.]".prop_map(|s| s.chars().next().unwrap())],
    ) {
        let client = client_with(&uri);
        let mut chars: Vec<char> = uri.chars().collect();
        match edit {
            0 => chars.insert(at.index(chars.len() + 1), c),
            1 => {
                chars.remove(at.index(chars.len()));
            }
            _ => {
                let i = at.index(chars.len());
                chars[i] = c;
            }
        }
        let candidate: String = chars.into_iter().collect();
        prop_assume!(candidate != uri);
        prop_assert!(!accepted_by(&client, &candidate), "{} matched {}", candidate, uri);
    }
}

#[test]
fn the_near_misses_cover_case_slash_query_and_port() {
    let uri = "https://app.example/cb";
    let misses = near_misses(uri, 0);
    for wanted in [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example:443/cb",
        "https://app.example:8443/cb",
    ] {
        assert!(misses.iter().any(|m| m == wanted), "{wanted} in {misses:?}");
    }
    assert!(misses.iter().any(|m| m.eq_ignore_ascii_case(uri) && m != uri));
    let misses = near_misses("http://127.0.0.1:3000/cb", 0);
    assert!(misses.iter().any(|m| m == "http://127.0.0.1:3001/cb"));
    assert!(misses.iter().any(|m| m == "http://127.0.0.1/cb"));
}

#[test]
fn the_uri_strategy_reaches_both_accepted_and_refused_uris() {
    // Guards the property above against being vacuous.
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = uri_like();
    let accepted = (0..1000)
        .filter(|_| RedirectUri::parse(&strategy.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!((100..900).contains(&accepted), "{accepted} of 1000 accepted");
}
