-- The revocation feed (issue 15): what ended that access tokens depend on,
-- for resource servers that check tokens offline.

-- A confidential client that may read the feed (`--allow-events`).
ALTER TABLE clients ADD COLUMN allow_events boolean NOT NULL DEFAULT false;
ALTER TABLE clients ADD CONSTRAINT clients_allow_events_confidential
    CHECK (NOT allow_events OR client_type = 'confidential');

-- One row per revocation. `seq` is the feed's cursor: writers take a
-- transaction-scoped advisory lock before inserting, so rows become
-- visible in `seq` order and a reader that has seen `seq` N has seen every
-- row below it. Rows are dropped once no access token they could refuse
-- can still be valid (the access-token lifetime plus leeway).
CREATE TABLE revocation_events (
    seq        bigserial PRIMARY KEY,
    jti        uuid NOT NULL UNIQUE,
    -- session: a browser session's sid; grant: a refresh family's id;
    -- token: an access token's jti; user: a user's id (`sub`); client: a
    -- client id. Tokens of the subject issued at or before revoked_at are
    -- refused.
    kind       text NOT NULL CHECK (kind IN ('session', 'grant', 'token', 'user', 'client')),
    subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    revoked_at timestamptz NOT NULL,
    -- When every token the event can refuse has expired, where that is
    -- known more exactly than "revoked_at plus the access-token lifetime"
    -- (a revoked access token's own expiry).
    tokens_expire_by timestamptz
);
CREATE INDEX revocation_events_revoked_at_idx ON revocation_events (revoked_at);
