-- One family per authorization (code exchange). Every refresh token and
-- access token descended from it carries its id, so reuse of a spent refresh
-- token or a replayed code revokes them all at once.
CREATE TABLE token_families (
    id             uuid PRIMARY KEY,
    client_id      text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The browser session that produced it, so logout can revoke it.
    session_hash   bytea,
    scopes         text[] NOT NULL,
    created_at     timestamptz NOT NULL,
    -- Absolute lifetime: after this the user logs in again.
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX token_families_session_hash_idx ON token_families (session_hash);
CREATE INDEX token_families_expires_at_idx ON token_families (expires_at);

CREATE TABLE refresh_tokens (
    token_hash       bytea PRIMARY KEY,
    family_id        uuid NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    client_id        text NOT NULL,
    created_at       timestamptz NOT NULL,
    -- Idle expiry, never later than the family's absolute expiry.
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    -- The successor pair handed out when this token was spent, sealed, kept
    -- only until grace_until so a concurrent request gets the same pair.
    successor_sealed bytea,
    grace_until      timestamptz
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- Access tokens revoked before their expiry (RFC 7009), by jti.
CREATE TABLE revoked_access_tokens (
    jti        uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);
