-- +goose Up
-- App sessions (docs/api.md): an app or a CLI holds a session like a
-- browser's, listed and ended the same way, named by the client it says it
-- is. Its refresh state lives here, not in Redis, so that it survives a
-- Redis restart: the SHA-256 of the current refresh token, of the one
-- before it (honored once within REFRESH_GRACE, for a client that lost an
-- answer), and when it was last refreshed (the app idle timeout counts
-- from then).
ALTER TABLE sessions
    ADD COLUMN kind text NOT NULL DEFAULT 'browser' CHECK (kind IN ('browser', 'app')),
    ADD COLUMN client_name text NOT NULL DEFAULT '',
    -- The public id of the browser session that approved a device-flow
    -- sign-in; NULL otherwise.
    ADD COLUMN approved_by text,
    ADD COLUMN refresh_hash bytea,
    ADD COLUMN prev_refresh_hash bytea,
    ADD COLUMN prev_refresh_used boolean NOT NULL DEFAULT false,
    ADD COLUMN refreshed_at timestamptz;
CREATE UNIQUE INDEX sessions_refresh_hash_idx ON sessions (refresh_hash);
CREATE UNIQUE INDEX sessions_prev_refresh_hash_idx ON sessions (prev_refresh_hash);

-- Every refresh token an app session has rotated away from: presenting
-- one (other than the grace use of the previous one) is reuse, which ends
-- the session. Deleted with the session's record.
CREATE TABLE retired_refresh_tokens (
    hash       bytea       PRIMARY KEY,
    session_id bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    retired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_refresh_tokens_session_idx ON retired_refresh_tokens (session_id);

ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed', 'password_reset',
    'email_change_undone', 'refresh_token_reused'));

-- +goose Down
UPDATE sessions SET end_reason = 'revoked_by_admin' WHERE end_reason = 'refresh_token_reused';
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed', 'password_reset',
    'email_change_undone'));
DROP TABLE retired_refresh_tokens;
DROP INDEX sessions_prev_refresh_hash_idx;
DROP INDEX sessions_refresh_hash_idx;
ALTER TABLE sessions DROP COLUMN refreshed_at, DROP COLUMN prev_refresh_used, DROP COLUMN prev_refresh_hash,
    DROP COLUMN refresh_hash, DROP COLUMN approved_by, DROP COLUMN client_name, DROP COLUMN kind;
