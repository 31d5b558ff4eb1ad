-- Notes belong to the `sub` of the access token that created them. The
-- resource server keeps no copy of the auth server's users.
CREATE TABLE notes (
    id         uuid PRIMARY KEY,
    owner      text NOT NULL CHECK (length(owner) BETWEEN 1 AND 255),
    title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body       text NOT NULL CHECK (char_length(body) <= 20000),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- Serves "my notes, newest first" and the keyset pagination cursor.
CREATE INDEX notes_owner_created_idx ON notes (owner, created_at DESC, id DESC);
