ALTER TABLE signing_keys DROP COLUMN retired_at;
ALTER TABLE clients DROP CONSTRAINT clients_previous_secret_confidential;
ALTER TABLE clients DROP CONSTRAINT clients_previous_secret_pair;
ALTER TABLE clients DROP COLUMN previous_secret_expires_at;
ALTER TABLE clients DROP COLUMN previous_secret_hash;
ALTER TABLE users DROP COLUMN last_sign_in_at;
ALTER TABLE users DROP COLUMN disabled_at;
