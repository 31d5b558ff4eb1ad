//! Diesel table definitions, written by hand to match
//! `migrations/auth-server/`.

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Text,
        roles -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
        last_sign_in_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        name -> Text,
        client_type -> Text,
        secret_hash -> Nullable<Bytea>,
        redirect_uris -> Array<Text>,
        post_logout_redirect_uris -> Array<Text>,
        grant_types -> Array<Text>,
        scopes -> Array<Text>,
        audiences -> Array<Text>,
        first_party -> Bool,
        allow_introspection -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        previous_secret_hash -> Nullable<Bytea>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        backchannel_logout_uri -> Nullable<Text>,
        require_nonce -> Bool,
        allow_events -> Bool,
    }
}

diesel::table! {
    browser_sessions (id_hash) {
        id_hash -> Bytea,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        sid -> Uuid,
        auth_time -> Timestamptz,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Uuid,
        client_id -> Text,
        scopes -> Array<Text>,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Bytea,
        client_id -> Text,
        user_id -> Uuid,
        session_hash -> Nullable<Bytea>,
        redirect_uri -> Text,
        redirect_uri_given -> Bool,
        scopes -> Array<Text>,
        code_challenge -> Text,
        family_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        nonce -> Nullable<Text>,
        sid -> Nullable<Uuid>,
        auth_time -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        private_key_sealed -> Bytea,
        created_at -> Timestamptz,
        activates_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    token_families (id) {
        id -> Uuid,
        client_id -> Text,
        user_id -> Uuid,
        session_hash -> Nullable<Bytea>,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        sid -> Nullable<Uuid>,
        auth_time -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        family_id -> Uuid,
        client_id -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        successor_sealed -> Nullable<Bytea>,
        grace_until -> Nullable<Timestamptz>,
        spent_request -> Nullable<Bytea>,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(browser_sessions -> users (user_id));
diesel::joinable!(consents -> users (user_id));
diesel::joinable!(refresh_tokens -> token_families (family_id));
diesel::joinable!(token_families -> users (user_id));
diesel::joinable!(token_families -> clients (client_id));

diesel::table! {
    backchannel_logouts (id) {
        id -> Uuid,
        client_id -> Text,
        subject -> Uuid,
        sid -> Nullable<Uuid>,
        created_at -> Timestamptz,
        attempts -> Integer,
        next_attempt_at -> Timestamptz,
    }
}

diesel::table! {
    revocation_events (seq) {
        seq -> BigInt,
        jti -> Uuid,
        kind -> Text,
        subject -> Text,
        revoked_at -> Timestamptz,
        tokens_expire_by -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    revocation_events,
    backchannel_logouts,
    users,
    clients,
    browser_sessions,
    consents,
    authorization_codes,
    signing_keys,
    token_families,
    refresh_tokens,
    revoked_access_tokens,
    login_throttle,
    rate_limits,
);

diesel::table! {
    login_throttle (key) {
        key -> Text,
        failures -> Integer,
        window_started_at -> Timestamptz,
        blocked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rate_limits (key) {
        key -> Text,
        tat -> Timestamptz,
    }
}
