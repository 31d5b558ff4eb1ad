DROP TABLE revocation_events;
ALTER TABLE clients DROP CONSTRAINT clients_allow_events_confidential;
ALTER TABLE clients DROP COLUMN allow_events;
