-- Server-side browser sessions of the login pages. The cookie holds a random
-- id; only its SHA-256 is stored.
CREATE TABLE browser_sessions (
    id_hash      bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    -- Absolute expiry; the idle expiry is last_seen_at + the idle lifetime.
    expires_at   timestamptz NOT NULL
);
CREATE INDEX browser_sessions_expires_at_idx ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_user_id_idx ON browser_sessions (user_id);

-- Remembered consent: the union of scopes a user approved for a client.
CREATE TABLE consents (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes     text[] NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Authorization codes, stored hashed. A code is consumed by setting used_at
-- (not deleted) so a second use can be recognised and the tokens issued
-- from it revoked (OAuth 2.1 section 4.1.3).
CREATE TABLE authorization_codes (
    code_hash          bytea PRIMARY KEY,
    client_id          text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash       bytea,
    redirect_uri       text NOT NULL,
    redirect_uri_given boolean NOT NULL,
    scopes             text[] NOT NULL,
    code_challenge     text NOT NULL,
    family_id          uuid NOT NULL,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    used_at            timestamptz
);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

-- Signing keys, shared by every instance. Private keys are sealed with
-- AES-256-GCM under a key derived from AUTH_KEY_ENCRYPTION_KEY.
CREATE TABLE signing_keys (
    kid                text PRIMARY KEY,
    alg                text NOT NULL,
    public_jwk         text NOT NULL,
    private_key_sealed bytea NOT NULL,
    created_at         timestamptz NOT NULL,
    -- Published from created_at; signs from activates_at until a newer key
    -- activates.
    activates_at       timestamptz NOT NULL
);
CREATE INDEX signing_keys_activates_at_idx ON signing_keys (activates_at);
