-- +goose Up
-- An app session from the device flow (RFC 8628) proved nothing itself: a
-- signed-in browser approved it (approved_by). It was stored as 'password';
-- it now says 'device_code', and the sessions approved so far are named so.
ALTER TABLE sessions DROP CONSTRAINT sessions_auth_method_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_auth_method_check CHECK (auth_method IN (
    'password', 'password+totp', 'password+passkey', 'passkey', 'recovery_code', 'device_code'));
UPDATE sessions SET auth_method = 'device_code' WHERE approved_by IS NOT NULL;

-- +goose Down
UPDATE sessions SET auth_method = 'password' WHERE auth_method = 'device_code';
ALTER TABLE sessions DROP CONSTRAINT sessions_auth_method_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_auth_method_check CHECK (auth_method IN (
    'password', 'password+totp', 'password+passkey', 'passkey', 'recovery_code'));
