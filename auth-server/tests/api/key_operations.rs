//! Signing-key operations (issue 12): `keys list`, `keys retire`, `keys
//! rewrap` with a restart on the new KEK, and the scheduled rotation (one
//! instance rotates; ninety simulated days never leave a token that a
//! JWKS-caching resource server cannot verify).

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use auth_server::keys::KeyManager;
use auth_server::keys::rotation::{self, Schedule};
use auth_server::registration::ClientRegistration;
use auth_server::storage::keys::KeyRow;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth_common::testing::TestDatabase;
use serde_json::{Map, Value, json};

use crate::helpers::*;

fn ok(env: &HashMap<String, String>, args: &[&str]) -> Value {
    let run = run_auth_binary(env, args, "");
    assert!(run.status.success(), "{args:?}: {run:?}");
    run.json()
}

fn machine(app: &TestApp) -> String {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Batch job".into(),
        confidential: true,
        ..Default::default()
    });
    basic(&client.client_id, &secret.expect("secret"))
}

fn token(base: &str, authorization: &str) -> String {
    let reply = Browser::new(base).post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", authorization)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().expect("token").to_owned()
}

fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"].as_str().expect("kid").to_owned()
}

fn published_kids(base: &str) -> Vec<String> {
    let jwks = Browser::new(base).get("/.well-known/jwks.json").json();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn reload(state: &actix_web::web::Data<auth_server::state::AppState>) {
    actix_web::rt::System::new().block_on(auth_server::background::reload(state));
}

fn state_of<'v>(list: &'v Value, kid: &str) -> &'v str {
    list.as_array()
        .expect("array")
        .iter()
        .find(|k| k["kid"] == kid)
        .and_then(|k| k["state"].as_str())
        .unwrap_or_else(|| panic!("{kid} not in {list}"))
}

// ---------------------------------------------------------------------------
// keys list / retire

#[test]
fn keys_list_shows_each_state_and_retire_refuses_the_signing_key_unless_forced() {
    let app = spawn_app();
    let authorization = machine(&app);
    let first = ok(&app.env, &["keys", "list"]);
    assert_eq!(first.as_array().unwrap().len(), 1, "{first}");
    let old = first[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(first[0]["state"], "active");
    assert_eq!(first[0]["alg"], "ES256");
    assert_eq!(first[0]["retires_at"], Value::Null);
    assert!(!first.to_string().contains("private"), "{first}");

    let run = run_auth_binary(&app.env, &["keys", "retire", &old], "");
    run.assert_one_line_error("signing key");
    run_auth_binary(&app.env, &["keys", "retire", &old, "--force"], "").assert_one_line_error("keys rotate");
    run_auth_binary(&app.env, &["keys", "retire", "no-such-kid"], "").assert_one_line_error("no signing key");

    let new = ok(&app.env, &["keys", "rotate"])["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = ok(&app.env, &["keys", "list"]);
    assert_eq!(state_of(&listed, &old), "active");
    assert_eq!(state_of(&listed, &new), "pending");

    // A compromised signing key: forced out, the pending key signs at once.
    let out = ok(&app.env, &["keys", "retire", &old, "--force"]);
    assert_eq!(out["promoted"], new.as_str());
    assert_eq!(out["forced"], true);
    reload(&app.state);
    assert_eq!(published_kids(&app.base), std::slice::from_ref(&new));
    let after = token(&app.base, &authorization);
    assert_eq!(kid_of(&after), new);
    let listed = ok(&app.env, &["keys", "list"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the retired key's row is deleted: {listed}"
    );
    assert_eq!(state_of(&listed, &new), "active");
}

#[test]
fn a_replaced_key_is_retiring_until_its_tokens_expire_and_retire_waits_for_that() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_KEY_ACTIVATION_DELAY".into(), "0".into());
    });
    let old = ok(&app.env, &["keys", "list"])[0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = ok(&app.env, &["keys", "rotate"])["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = ok(&app.env, &["keys", "list"]);
    assert_eq!(state_of(&listed, &old), "retiring");
    assert_eq!(state_of(&listed, &new), "active");
    let run = run_auth_binary(&app.env, &["keys", "retire", &old], "");
    run.assert_one_line_error("may be valid until");
    assert_eq!(state_of(&ok(&app.env, &["keys", "list"]), &old), "retiring");
    // Its tokens expired long ago (the new key took over in the past).
    app.sql_exec(&format!(
        "UPDATE signing_keys SET activates_at = now() - interval '3 hours' WHERE kid = '{old}';
         UPDATE signing_keys SET activates_at = now() - interval '2 hours' WHERE kid = '{new}';"
    ));
    let out = ok(&app.env, &["keys", "retire", &old]);
    assert_eq!(out["forced"], false);
    assert_eq!(out["promoted"], Value::Null);
}

// ---------------------------------------------------------------------------
// keys rewrap

fn kek() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn after_keys_rewrap_a_restart_with_only_the_new_kek_still_signs_and_verifies() {
    let mut app = spawn_app();
    let authorization = machine(&app);
    ok(&app.env, &["keys", "rotate"]);
    let before = token(&app.base, &authorization);
    let old_kek = app.env["AUTH_KEY_ENCRYPTION_KEY"].clone();
    let new_kek = kek();

    let mut rotating = app.env.clone();
    rotating.insert("AUTH_KEY_ENCRYPTION_KEY".into(), new_kek.clone());
    // Without the previous KEK nothing can be opened: refused, unchanged.
    run_auth_binary(&rotating, &["keys", "rewrap"], "")
        .assert_one_line_error("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS");
    rotating.insert("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS".into(), old_kek.clone());

    // During the rolling restart an instance with both keys serves.
    let peer = start_instance(&{
        let mut env = peer_env(&app);
        env.insert("AUTH_KEY_ENCRYPTION_KEY".into(), new_kek.clone());
        env.insert("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS".into(), old_kek.clone());
        env
    })
    .expect("an instance with the new and the previous KEK starts");
    assert_eq!(Browser::new(&peer.base).get("/.well-known/jwks.json").status, 200);
    drop(peer);

    let out = ok(&rotating, &["keys", "rewrap"]);
    assert_eq!(out["rewrapped"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(out["unchanged"], json!([]));
    // Idempotent: a second run finds nothing to do.
    let again = ok(&rotating, &["keys", "rewrap"]);
    assert_eq!(again["rewrapped"], json!([]));
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM signing_keys"),
        2,
        "rewrap keeps every key"
    );

    // The old KEK no longer opens them; only the new one does.
    app.stop();
    let mut old_only = app.env.clone();
    old_only.remove("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS");
    assert!(
        start_instance(&peer_env_from(&old_only)).is_err(),
        "the old KEK still opens the keys"
    );

    let mut new_only = app.env.clone();
    new_only.insert("AUTH_KEY_ENCRYPTION_KEY".into(), new_kek);
    let restarted = start_instance(&peer_env_from(&new_only)).expect("starts with only the new KEK");
    let after = token(&restarted.base, &authorization);
    let keys = restarted.state.keys.snapshot();
    assert!(
        keys.verify(&after, Utc::now()).is_some(),
        "a token signed after the restart verifies"
    );
    assert!(
        keys.verify(&before, Utc::now()).is_some(),
        "a token signed before the rewrap verifies"
    );
}

/// An instance's settings for `env` on a fresh port.
fn peer_env_from(env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut env = env.clone();
    env.insert("AUTH_LISTEN".into(), format!("127.0.0.1:{}", free_port()));
    env
}

// ---------------------------------------------------------------------------
// Scheduled rotation

fn schedule() -> Schedule {
    Schedule {
        every: Duration::from_secs(30 * 86_400),
        activation_delay: Duration::from_secs(900),
        reload_interval: Duration::from_secs(120),
        jwks_max_age: Duration::from_secs(300),
        access_token_ttl: Duration::from_secs(600),
    }
}

#[test]
fn a_due_rotation_adds_a_pre_published_key_on_the_next_reload_and_the_old_key_keeps_signing() {
    let app = spawn_app();
    let authorization = machine(&app);
    let old = ok(&app.env, &["keys", "list"])[0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The key was made 31 days ago: AUTH_KEY_ROTATION_INTERVAL (30 days) has passed.
    app.sql_exec("UPDATE signing_keys SET created_at = now() - interval '31 days', activates_at = now() - interval '31 days'");
    reload(&app.state);
    let listed = ok(&app.env, &["keys", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let new = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] != old.as_str())
        .unwrap();
    assert_eq!(new["state"], "pending");
    let activates: DateTime<Utc> = new["activates_at"].as_str().unwrap().parse().unwrap();
    assert!(activates >= Utc::now() + chrono::Duration::seconds(880), "{new}");
    assert_eq!(published_kids(&app.base).len(), 2);
    assert_eq!(kid_of(&token(&app.base, &authorization)), old);
    // The next round finds a key pending: no second rotation.
    reload(&app.state);
    assert_eq!(ok(&app.env, &["keys", "list"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_server_with_rotation_off_never_rotates() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_KEY_ROTATION_INTERVAL".into(), "0".into());
    });
    app.sql_exec("UPDATE signing_keys SET created_at = now() - interval '400 days'");
    reload(&app.state);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM signing_keys"), 1);
}

#[test]
fn no_scheduled_rotation_runs_while_the_kek_is_being_changed() {
    // A key sealed under the new KEK could not be opened by the instances
    // still on the old one.
    let old = kek();
    let app = spawn_app_with(|env| {
        env.insert("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS".into(), old);
    });
    app.sql_exec("UPDATE signing_keys SET created_at = now() - interval '31 days'");
    reload(&app.state);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM signing_keys"), 1);
}

#[test]
fn when_several_instances_tick_at_once_exactly_one_rotates() {
    let db = TestDatabase::create("auth_test");
    let mut conn = db.connect();
    oauth_common::db::migrate(
        &mut conn,
        auth_server::storage::MIGRATIONS,
        auth_server::storage::MIGRATION_LOCK,
    )
    .unwrap();
    let wrap = [7u8; 32];
    let start = Utc::now() - chrono::Duration::days(31);
    let first = auth_server::keys::generate(&wrap, start, start).unwrap();
    auth_server::storage::keys::insert(&mut conn, &first).unwrap();
    drop(conn);

    for round in 0..3 {
        let now = Utc::now() + chrono::Duration::days(31 * round);
        let barrier = Arc::new(Barrier::new(4));
        let added: Vec<bool> = (0..4)
            .map(|_| {
                let url = db.url();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    use diesel::Connection as _;
                    let mut conn = diesel::PgConnection::establish(&url).unwrap();
                    barrier.wait();
                    rotation::tick(&mut conn, &wrap, &schedule(), now)
                        .unwrap()
                        .is_some()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(
            added.iter().filter(|a| **a).count(),
            1,
            "round {round}: {added:?}"
        );
    }
    let mut conn = db.connect();
    assert_eq!(auth_server::storage::keys::load_all(&mut conn).unwrap().len(), 4);
}

/// A resource server that caches the JWKS for its `max-age` and, to be
/// strict, never fetches early for an unknown `kid`.
struct CachingVerifier {
    keys: Option<JwkSet>,
    fetched_at: DateTime<Utc>,
    max_age: chrono::Duration,
    fetches: usize,
}

impl CachingVerifier {
    fn verify(&mut self, token: &str, now: DateTime<Utc>, instances: &[&KeyManager]) -> Result<(), String> {
        if self.keys.is_none() || now >= self.fetched_at + self.max_age {
            // Whichever instance the load balancer picks, as it last loaded.
            let instance = instances[self.fetches % instances.len()];
            let snapshot = instance.snapshot();
            let (body, _) = snapshot.jwks_document();
            self.keys = Some(serde_json::from_str(body).map_err(|e| e.to_string())?);
            self.fetched_at = now;
            self.fetches += 1;
        }
        let set = self.keys.as_ref().ok_or("no JWKS")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = set
            .find(&kid)
            .ok_or_else(|| format!("kid {kid} is not in the cached JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Simulated time: expiry is checked against it below.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp"]);
        validation.set_audience(&["api"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| e.to_string())?
            .claims;
        let exp = claims["exp"].as_i64().ok_or("no exp")?;
        if exp <= now.timestamp() {
            return Err("expired".into());
        }
        Ok(())
    }
}

/// One auth-server instance in the simulation: it reloads the shared rows
/// on its own phase and, like `background::reload`, rotates when due and
/// deletes keys nobody can verify with.
struct SimInstance {
    keys: KeyManager,
    phase: i64,
}

fn sign(keys: &KeyManager, now: DateTime<Utc>, ttl: i64) -> String {
    let mut claims = Map::new();
    claims.insert("aud".into(), json!("api"));
    claims.insert("iat".into(), json!(now.timestamp()));
    claims.insert("exp".into(), json!(now.timestamp() + ttl));
    keys.snapshot().sign(claims, now).expect("a key signs")
}

#[test]
fn scheduled_rotation_over_ninety_simulated_days_never_leaves_a_token_unverifiable() {
    let wrap = [5u8; 32];
    let schedule = schedule();
    let ttl = schedule.access_token_ttl.as_secs() as i64;
    let step = 60;
    let reload_every = schedule.reload_interval.as_secs() as i64;
    let start = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let mut rows: Vec<KeyRow> = vec![auth_server::keys::generate(&wrap, start, start).unwrap()];
    let mut instances: Vec<SimInstance> = (0..2)
        .map(|i| SimInstance {
            keys: KeyManager::new(&rows, &[wrap], schedule.access_token_ttl, start).unwrap(),
            phase: i * step,
        })
        .collect();
    let mut resource_server = CachingVerifier {
        keys: None,
        fetched_at: start,
        max_age: chrono::Duration::from_std(schedule.jwks_max_age).unwrap(),
        fetches: 0,
    };
    let mut outstanding: std::collections::VecDeque<(DateTime<Utc>, String)> = Default::default();
    let (mut rotations, mut most_published, mut checked) = (0, 0, 0);
    let end = start + chrono::Duration::days(90);
    let mut now = start;
    let mut tick = 0i64;
    while now < end {
        for instance in &mut instances {
            if (tick * step + instance.phase) % reload_every == 0 {
                // The rotation lock makes this one instance at a time.
                if let Some(activates_at) = rotation::due(&rows, &schedule, now).unwrap() {
                    rows.push(auth_server::keys::generate(&wrap, now, activates_at).unwrap());
                    rows.sort_by_key(|r| r.activates_at);
                    rotations += 1;
                }
                instance.keys.replace(&rows, now).unwrap();
                let expired = instance.keys.snapshot().expired_kids(now);
                rows.retain(|r| !expired.contains(&r.kid));
            }
        }
        let signer = &instances[(tick % 2) as usize].keys;
        most_published = most_published.max(signer.snapshot().published(now).len());
        outstanding.push_back((now, sign(signer, now, ttl)));
        while outstanding
            .front()
            .is_some_and(|(at, _)| *at + chrono::Duration::seconds(ttl) <= now)
        {
            outstanding.pop_front();
        }
        // The newest token and the oldest one still valid.
        let views: Vec<&KeyManager> = instances.iter().map(|i| &i.keys).collect();
        for (signed_at, token) in [outstanding.back(), outstanding.front()].into_iter().flatten() {
            resource_server
                .verify(token, now, &views)
                .unwrap_or_else(|e| panic!("at {now}, a token signed at {signed_at} failed: {e}"));
            checked += 1;
        }
        now += chrono::Duration::seconds(step);
        tick += 1;
    }
    println!("{rotations} rotations, {checked} verifications, at most {most_published} keys published");
    assert_eq!(
        rotations, 2,
        "a rotation every 30 days in 90 (the first key at day 0)"
    );
    assert!(most_published <= 3, "{most_published}");
    assert!(rows.len() <= 2, "retired keys are deleted: {}", rows.len());
}
