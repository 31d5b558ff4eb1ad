DROP TABLE revoked_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE token_families;
