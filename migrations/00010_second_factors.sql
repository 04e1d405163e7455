-- +goose Up
-- How each session was established, shown on the Devices page and to
-- admins. Sessions from before this migration signed in with a password.
ALTER TABLE sessions ADD COLUMN auth_method text NOT NULL DEFAULT 'password'
    CHECK (auth_method IN ('password', 'password+totp', 'password+passkey', 'passkey', 'recovery_code'));

-- A user's authenticator app (TOTP, RFC 6238). The secret is sealed with
-- a key derived from SECRET_KEY (AES-256-GCM, bound to the user id). The
-- row exists unconfirmed while set-up waits for the first code. last_step
-- is the last time step whose code was accepted: codes of that step or
-- earlier are refused, so each code works once.
CREATE TABLE totp_factors (
    user_id      bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       bytea       NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL
);

-- Recovery codes, stored as HMAC-SHA256 keyed from SECRET_KEY; each is used
-- once (used_at set in the same statement that checks it is unused).
CREATE TABLE recovery_codes (
    id         bigserial   PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL,
    UNIQUE (user_id, code_hash)
);

-- A sign-in waiting for its second factor: the password was right, no
-- session exists yet. Named by the hash of a random token the browser
-- holds in a cookie; short-lived, deleted when used.
CREATE TABLE signin_challenges (
    token_hash bytea       PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remember   boolean     NOT NULL DEFAULT false,
    next       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX signin_challenges_expires_idx ON signin_challenges (expires_at);

-- +goose Down
DROP TABLE signin_challenges;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
ALTER TABLE sessions DROP COLUMN auth_method;
