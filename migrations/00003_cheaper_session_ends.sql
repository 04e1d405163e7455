-- +goose Up
-- Ending a session is an UPDATE of its row that cannot be HOT (ended_at is
-- in index predicates), so every index on sessions gets a new entry per
-- ended session: revoking 1,000 sessions at once paid for 1,000 of each
-- (docs/performance.md). Two changes make that cheaper without slowing any
-- query that needs an index:
--
-- 1. One index instead of two for "a user's sessions": (user_id,
--    ended_at DESC NULLS FIRST, last_seen_at DESC) serves what
--    sessions_user_ended_idx served (a user's ended sessions, latest first:
--    the non-null ended_at follow the nulls in order) and what
--    sessions_user_last_seen_idx served (every session of a user: the admin
--    list's count of active sessions and last activity, an index-only scan
--    now; and the user_id foreign key's cascade). An ended session gets one
--    entry here instead of one in each.
-- 2. No foreign key on ended_by: its check ran once per row, so ending
--    1,000 sessions ran 1,000 lookups of the same user. The actor is always
--    the signed-in user doing the ending, accounts are disabled rather than
--    deleted, and pages show an actor id without a user as "(deleted
--    user)". (ON DELETE SET NULL went with it: a deleted actor's id stays.)
CREATE INDEX sessions_user_idx ON sessions (user_id, ended_at DESC NULLS FIRST, last_seen_at DESC);
DROP INDEX sessions_user_ended_idx;
DROP INDEX sessions_user_last_seen_idx;
ALTER TABLE sessions DROP CONSTRAINT sessions_ended_by_fkey;

-- +goose Down
UPDATE sessions SET ended_by = NULL WHERE ended_by IS NOT NULL AND ended_by NOT IN (SELECT id FROM users);
ALTER TABLE sessions ADD CONSTRAINT sessions_ended_by_fkey FOREIGN KEY (ended_by) REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX sessions_user_last_seen_idx ON sessions (user_id, last_seen_at DESC);
CREATE INDEX sessions_user_ended_idx ON sessions (user_id, ended_at DESC) WHERE ended_at IS NOT NULL;
DROP INDEX sessions_user_idx;
