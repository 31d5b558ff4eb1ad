DROP TABLE rate_limits;
ALTER TABLE refresh_tokens DROP COLUMN spent_request;
