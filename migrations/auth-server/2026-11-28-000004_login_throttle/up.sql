-- Failed sign-ins per account (the lower-cased username as typed, whether
-- or not it exists, so throttling reveals nothing about accounts).
CREATE TABLE login_throttle (
    key               text PRIMARY KEY,
    failures          integer NOT NULL CHECK (failures > 0),
    window_started_at timestamptz NOT NULL,
    blocked_until     timestamptz
);
CREATE INDEX login_throttle_window_idx ON login_throttle (window_started_at);
