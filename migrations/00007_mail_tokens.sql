-- +goose Up
-- Secrets sent by mail (verify an address, reset a password, confirm or
-- undo an address change, "this wasn't me"). Only the SHA-256 of a token is
-- stored; a token is used by one UPDATE ... WHERE used_at IS NULL, so of two
-- uses at once exactly one succeeds.
CREATE TABLE mail_tokens (
    id         bigserial PRIMARY KEY,
    hash       bytea       NOT NULL UNIQUE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email',
                                                       'undo_email_change', 'not_me')),
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The address the token is about: the one to verify, the new one of a
    -- change, the old one an undo restores.
    email      text        NOT NULL DEFAULT '',
    -- The public id of the session a "this wasn't me" link ends.
    session_id text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX mail_tokens_user_idx ON mail_tokens (user_id, purpose) WHERE used_at IS NULL;

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- A password reset, and undoing an address change, end every session of
-- the account.
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed', 'password_reset',
    'email_change_undone'));

-- +goose Down
UPDATE sessions SET end_reason = 'password_changed' WHERE end_reason IN ('password_reset', 'email_change_undone');
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed'));
ALTER TABLE users DROP COLUMN email_verified_at;
DROP TABLE mail_tokens;
