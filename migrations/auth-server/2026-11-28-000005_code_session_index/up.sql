-- Logout expires the session's unused codes and moves them at a new sign-in.
CREATE INDEX authorization_codes_session_hash_idx ON authorization_codes (session_hash);
