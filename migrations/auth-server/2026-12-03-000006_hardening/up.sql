-- The request that spent a refresh token (a digest of client, grant type
-- and normalized scope): inside the grace window only the identical
-- request gets the stored successor; anything else is reuse.
ALTER TABLE refresh_tokens ADD COLUMN spent_request bytea;

-- Shared failure limits (per client address, per client): the GCRA
-- "theoretical arrival time" of each key, read and compare-and-set by every
-- instance. A key whose tat has passed is idle and can be deleted.
CREATE TABLE rate_limits (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL
);
CREATE INDEX rate_limits_tat_idx ON rate_limits (tat);
