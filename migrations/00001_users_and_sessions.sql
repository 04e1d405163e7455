-- +goose Up
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique whatever their case; sign-in looks them up the same way.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- One row per signed-in browser. The scs token (the cookie value) is never
-- stored here: rows are named by public_id.
CREATE TABLE sessions (
    id           bigserial PRIMARY KEY,
    public_id    text        NOT NULL UNIQUE,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent   text        NOT NULL DEFAULT '',
    browser      text        NOT NULL DEFAULT '',
    os           text        NOT NULL DEFAULT '',
    device_type  text        NOT NULL DEFAULT '',
    ip           text        NOT NULL DEFAULT '',
    remember     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    end_reason   text CHECK (end_reason IN ('signed_out', 'revoked_by_user', 'revoked_by_admin',
                                            'password_changed', 'account_disabled', 'idle_timeout',
                                            'lifetime_reached', 'session_limit')),
    ended_by     bigint REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
-- The Devices page reads a user's active sessions and their recent ended ones.
CREATE INDEX sessions_user_active_idx ON sessions (user_id, last_seen_at DESC) WHERE ended_at IS NULL;
CREATE INDEX sessions_user_ended_idx ON sessions (user_id, ended_at DESC) WHERE ended_at IS NOT NULL;

-- +goose Down
DROP TABLE sessions;
DROP TABLE users;
