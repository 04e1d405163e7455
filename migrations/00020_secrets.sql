-- +goose Up
-- Server-side secrets that every instance must share and that must outlive
-- Redis, made once by the first instance that needs one. session-tag keys
-- the tag a session cookie carries (an HMAC of the user id): it places a
-- user's session keys in one Redis Cluster slot without revealing the id,
-- and all instances must compute the same tag for the same user.
CREATE TABLE secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE secrets;
