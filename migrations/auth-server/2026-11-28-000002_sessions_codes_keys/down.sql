DROP TABLE signing_keys;
DROP TABLE authorization_codes;
DROP TABLE consents;
DROP TABLE browser_sessions;
