-- +goose Up
-- Passkeys (WebAuthn credentials). credential is go-webauthn's Credential
-- as JSON: public key, signature counter, flags, transports. No secret is
-- stored: a public key opens nothing.
CREATE TABLE passkeys (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea       NOT NULL UNIQUE,
    credential    jsonb       NOT NULL,
    name          text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id, id);

-- A WebAuthn ceremony under way (registering a passkey, or signing in with
-- one): the challenge and what the library must check, named by the hash
-- of a random token in the browser's cookie; short-lived, used once.
CREATE TABLE webauthn_ceremonies (
    token_hash   bytea       PRIMARY KEY,
    user_id      bigint      REFERENCES users (id) ON DELETE CASCADE,
    purpose      text        NOT NULL CHECK (purpose IN ('register', 'signin', 'second_factor')),
    session_data jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_idx ON webauthn_ceremonies (expires_at);

-- +goose Down
DROP TABLE webauthn_ceremonies;
DROP TABLE passkeys;
