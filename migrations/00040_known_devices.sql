-- +goose Up
-- New-device alerts (issue 12, flow 4). Owners may turn them off on their
-- profile; they are on for every account, old and new.
ALTER TABLE users ADD COLUMN new_device_alerts boolean NOT NULL DEFAULT true;

-- The browsers each account has signed in from, named by the SHA-256 of the
-- random id in their signed device cookie (never the id itself). A sign-in
-- from a browser not listed here is a new device. alerted_at is when a
-- sign-in from it was last mailed about, and alert_session_id the session
-- that alert's "This wasn't me" link names: the limits (one alert a day for
-- a browser alike, a cap per account per hour) count these.
CREATE TABLE known_devices (
    user_id          bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_hash      bytea       NOT NULL,
    browser          text        NOT NULL,
    os               text        NOT NULL,
    ip               text        NOT NULL,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    alerted_at       timestamptz,
    alert_session_id text        NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_hash)
);
CREATE INDEX known_devices_alerted_idx ON known_devices (user_id, alerted_at) WHERE alerted_at IS NOT NULL;

-- "This wasn't me" ends the account's sessions. The list keeps every reason of
-- the migrations before this one (00030 added refresh_token_reused).
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed', 'password_reset',
    'email_change_undone', 'refresh_token_reused', 'not_me'));

-- +goose Down
UPDATE sessions SET end_reason = 'password_reset' WHERE end_reason = 'not_me';
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed', 'password_reset',
    'email_change_undone', 'refresh_token_reused'));
DROP TABLE known_devices;
ALTER TABLE users DROP COLUMN new_device_alerts;
