-- +goose Up
-- Admin search matches any part of an email or name; trigram indexes keep
-- that fast on large user tables.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_name_trgm_idx ON users USING gin (name gin_trgm_ops);
-- The last-admin check counts enabled admins.
CREATE INDEX users_admins_idx ON users (id) WHERE role = 'admin' AND disabled_at IS NULL;

-- A role change ends the user's sessions, so new privileges never ride on
-- an old token.
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit', 'role_changed'));
-- The admin's all-sessions view lists active sessions newest first; the
-- user list shows when each user was last active.
CREATE INDEX sessions_active_id_idx ON sessions (id DESC) WHERE ended_at IS NULL;
CREATE INDEX sessions_user_last_seen_idx ON sessions (user_id, last_seen_at DESC);

-- The security event log: who did what to whom, from where.
CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text        NOT NULL,
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    user_id    bigint REFERENCES users (id) ON DELETE CASCADE,
    session_id text        NOT NULL DEFAULT '',
    ip         text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT '',
    detail     text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, id DESC);
CREATE INDEX audit_events_kind_idx ON audit_events (kind, id DESC);

-- +goose Down
DROP TABLE audit_events;
DROP INDEX sessions_user_last_seen_idx;
DROP INDEX sessions_active_id_idx;
UPDATE sessions SET end_reason = 'revoked_by_admin' WHERE end_reason = 'role_changed';
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check CHECK (end_reason IN (
    'signed_out', 'revoked_by_user', 'revoked_by_admin', 'password_changed', 'account_disabled',
    'idle_timeout', 'lifetime_reached', 'session_limit'));
DROP INDEX users_admins_idx;
DROP INDEX users_name_trgm_idx;
DROP INDEX users_email_trgm_idx;
