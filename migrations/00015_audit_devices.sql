-- +goose Up
-- Each security event names the device it came from, as the Activity page
-- and the audit log show it ("Firefox on Windows"): parsed from the user
-- agent when the event is recorded, as a session's device is. Events
-- recorded before this migration have none; the pages parse their stored
-- user agent instead.
ALTER TABLE audit_events ADD COLUMN browser text NOT NULL DEFAULT '',
                         ADD COLUMN os      text NOT NULL DEFAULT '';
-- The audit log filters by address and by date.
CREATE INDEX audit_events_ip_idx ON audit_events (ip, id DESC);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- +goose Down
DROP INDEX audit_events_at_idx;
DROP INDEX audit_events_ip_idx;
ALTER TABLE audit_events DROP COLUMN os, DROP COLUMN browser;
