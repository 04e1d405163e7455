-- +goose Up
-- Sign-ins of apps that cannot show a browser (a CLI, a TV) through the
-- device flow (RFC 8628): the app holds the device code and polls; a person
-- types the user code into a signed-in browser and approves or denies.
-- Only the SHA-256 of the device code is stored: the database never holds a
-- code that polls. The user code is short-lived and typed by people, and is
-- looked up as typed (normalised); guesses at it are throttled per client.
CREATE TABLE device_authorizations (
    id               bigserial PRIMARY KEY,
    device_code_hash bytea       NOT NULL UNIQUE,
    user_code        text        NOT NULL UNIQUE CHECK (user_code ~ '^[BCDFGHJKLMNPQRSTVWXZ]{8}$'),
    client_name      text        NOT NULL,
    -- The client that asked for the codes.
    ip               text        NOT NULL DEFAULT '',
    user_agent       text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    -- The poll interval in seconds: each slow_down adds 5 (RFC 8628 3.5).
    interval_seconds integer     NOT NULL CHECK (interval_seconds > 0),
    last_polled_at   timestamptz,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    -- Who answered, from which browser session (its public id), and when.
    user_id          bigint      REFERENCES users (id) ON DELETE CASCADE,
    approved_by      text        NOT NULL DEFAULT '',
    decided_at       timestamptz,
    CHECK ((status = 'pending') = (user_id IS NULL))
);
-- Old rows are deleted by expiry (DeleteExpiredDeviceAuthorizations).
CREATE INDEX device_authorizations_expires_idx ON device_authorizations (expires_at);

-- +goose Down
DROP TABLE device_authorizations;
