-- OpenID Connect (issue 14).

-- The public identifier of a browser session (`sid` in ID tokens, access
-- tokens and logout tokens). The cookie's id stays secret and is stored
-- only hashed; this one is safe to hand to clients. A new sign-in in the
-- same browser keeps the sid of the session it replaces.
ALTER TABLE browser_sessions ADD COLUMN sid uuid NOT NULL DEFAULT gen_random_uuid();
-- When the user last entered a password in this session (`auth_time`).
ALTER TABLE browser_sessions ADD COLUMN auth_time timestamptz NOT NULL DEFAULT now();
UPDATE browser_sessions SET auth_time = created_at;
CREATE INDEX browser_sessions_sid_idx ON browser_sessions (sid);

-- What an ID token issued from the code must say: the request's nonce,
-- the session and its sign-in time.
ALTER TABLE authorization_codes ADD COLUMN nonce text CHECK (nonce IS NULL OR length(nonce) <= 512);
ALTER TABLE authorization_codes ADD COLUMN sid uuid;
ALTER TABLE authorization_codes ADD COLUMN auth_time timestamptz;

-- Kept with the family so a refresh can issue an ID token with the same
-- auth_time and sid, and so a session's end reaches every client that
-- signed in through it.
ALTER TABLE token_families ADD COLUMN sid uuid;
ALTER TABLE token_families ADD COLUMN auth_time timestamptz;
CREATE INDEX token_families_sid_idx ON token_families (sid);
CREATE INDEX token_families_user_id_idx ON token_families (user_id);

-- OpenID Connect Back-Channel Logout 1.0 and a client's own rules.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri text;
ALTER TABLE clients ADD COLUMN require_nonce boolean NOT NULL DEFAULT false;

-- Logout tokens still to deliver. A row is written in the transaction
-- that ends the session (so nothing is lost if the process dies), claimed
-- by one instance at a time through `next_attempt_at` (a lease), and
-- deleted once delivered or given up.
CREATE TABLE backchannel_logouts (
    id              uuid PRIMARY KEY,
    client_id       text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- The user's id (`sub`); no foreign key: a deleted user is still
    -- logged out of the clients.
    subject         uuid NOT NULL,
    sid             uuid,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL
);
CREATE INDEX backchannel_logouts_next_attempt_idx ON backchannel_logouts (next_attempt_at);
