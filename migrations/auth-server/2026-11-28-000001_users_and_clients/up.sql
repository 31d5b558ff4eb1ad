-- People who log in on the auth-server's pages.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- Stored trimmed, as typed; uniqueness and lookups are case-insensitive.
    username      text NOT NULL
                  CHECK (username = btrim(username) AND length(username) BETWEEN 1 AND 64),
    -- Argon2id PHC string.
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    roles         text[] NOT NULL
                  CHECK (cardinality(roles) > 0 AND roles <@ ARRAY['user', 'admin']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- OAuth clients.
CREATE TABLE clients (
    client_id           text PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    client_type         text NOT NULL CHECK (client_type IN ('public', 'confidential')),
    -- SHA-256 of the server-generated 256-bit secret; NULL for public clients.
    secret_hash         bytea,
    redirect_uris       text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris text[] NOT NULL DEFAULT '{}',
    grant_types         text[] NOT NULL,
    scopes              text[] NOT NULL,
    audiences           text[] NOT NULL,
    first_party         boolean NOT NULL DEFAULT false,
    allow_introspection boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((client_type = 'confidential') = (secret_hash IS NOT NULL)),
    CHECK (secret_hash IS NULL OR length(secret_hash) = 32)
);
