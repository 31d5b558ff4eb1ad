-- Operator commands (issue 12).

-- A disabled user cannot sign in; last_sign_in_at is shown by `user show`.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
ALTER TABLE users ADD COLUMN last_sign_in_at timestamptz;

-- Secret rotation with an overlap: the secret being replaced keeps working
-- until previous_secret_expires_at.
ALTER TABLE clients ADD COLUMN previous_secret_hash bytea
    CHECK (previous_secret_hash IS NULL OR length(previous_secret_hash) = 32);
ALTER TABLE clients ADD COLUMN previous_secret_expires_at timestamptz;
ALTER TABLE clients ADD CONSTRAINT clients_previous_secret_pair
    CHECK ((previous_secret_hash IS NULL) = (previous_secret_expires_at IS NULL));
ALTER TABLE clients ADD CONSTRAINT clients_previous_secret_confidential
    CHECK (previous_secret_hash IS NULL OR client_type = 'confidential');

-- `keys retire`: from retired_at the key neither signs nor is published.
ALTER TABLE signing_keys ADD COLUMN retired_at timestamptz;
