-- +goose Up
-- Audit events are queued (in Redis, and in the memory of the instance
-- that recorded them) and written in the background, by any instance, and
-- possibly more than once: each carries an id made when it happened, and
-- the writers insert with ON CONFLICT (event_id) DO NOTHING, so each event
-- is stored exactly once. Events written before this migration have none.
ALTER TABLE audit_events ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX audit_events_event_id_idx ON audit_events (event_id);

-- +goose Down
DROP INDEX audit_events_event_id_idx;
ALTER TABLE audit_events DROP COLUMN event_id;
