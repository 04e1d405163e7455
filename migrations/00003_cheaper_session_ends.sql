-- +goose Up
-- Two writes happen to many session rows: last-seen (once a minute per
-- active session, so with a million sessions nearly once per request) and
-- ending sessions (revoke-all ends up to thousands at once). Both got
-- dearer with every index that holds the columns they change: an UPDATE
-- that changes an indexed column cannot be HOT, so it adds an entry to
-- every index of the table (docs/performance.md). So:
--
-- 1. One index for "a user's sessions" instead of three:
--    (user_id, ended_at DESC NULLS FIRST) gives a user's active sessions
--    (the nulls, first) and their ended ones latest first, which is what
--    sessions_user_active_idx, sessions_user_ended_idx and
--    sessions_user_last_seen_idx served; the pages that list them sort a
--    user's sessions by last_seen_at themselves (there are few), and the
--    user_id foreign key's cascade uses it too.
-- 2. No index holds last_seen_at or ip any more, so last-seen writes are
--    HOT updates: no index entries at all, and the new row version stays
--    on its page; fillfactor 90 leaves room for that on new pages.
-- 3. No foreign key on ended_by: its check ran once per row, so ending
--    1,000 sessions looked the same user up 1,000 times. The actor is
--    always the signed-in user doing the ending, accounts are disabled
--    rather than deleted, and pages show an actor id without a user as
--    "(deleted user)". (ON DELETE SET NULL went with it: a deleted actor's
--    id stays.)
CREATE INDEX sessions_user_idx ON sessions (user_id, ended_at DESC NULLS FIRST);
DROP INDEX sessions_user_active_idx;
DROP INDEX sessions_user_ended_idx;
DROP INDEX sessions_user_last_seen_idx;
ALTER TABLE sessions DROP CONSTRAINT sessions_ended_by_fkey;
ALTER TABLE sessions SET (fillfactor = 90);

-- +goose Down
ALTER TABLE sessions RESET (fillfactor);
UPDATE sessions SET ended_by = NULL WHERE ended_by IS NOT NULL AND ended_by NOT IN (SELECT id FROM users);
ALTER TABLE sessions ADD CONSTRAINT sessions_ended_by_fkey FOREIGN KEY (ended_by) REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX sessions_user_last_seen_idx ON sessions (user_id, last_seen_at DESC);
CREATE INDEX sessions_user_ended_idx ON sessions (user_id, ended_at DESC) WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_user_active_idx ON sessions (user_id, last_seen_at DESC) WHERE ended_at IS NULL;
DROP INDEX sessions_user_idx;
