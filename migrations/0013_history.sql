-- The user-facing half of issue 14: a history that keeps every match, and
-- what a page needs to say why a notification was made.

-- A rule with no destination that may receive (none chosen yet, or only
-- unconfirmed or turned-off ones) still matches: the match is a
-- notification without a destination, status 'recorded', that no worker
-- ever delivers. It is made once per message and user; delivered
-- notifications stay unique per message and destination (NULLs are distinct
-- there, hence the partial index).
--
-- Deleting a destination no longer deletes its history: its notifications
-- keep their place with no destination (what was still waiting is given up
-- by the store in the same transaction, see store.DeleteDestination).
--
-- 'skipped' is for a notification deliberately not sent (matched while its
-- destination was muted): not a failure, and not shown as one.
ALTER TABLE notifications ALTER COLUMN destination_id DROP NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_destination_id_fkey;
ALTER TABLE notifications ADD CONSTRAINT notifications_destination_id_fkey
    FOREIGN KEY (destination_id) REFERENCES destinations(id) ON DELETE SET NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'unknown', 'recorded', 'skipped'));
ALTER TABLE notifications ADD CONSTRAINT notifications_recorded_has_no_destination
    CHECK (status <> 'recorded' OR destination_id IS NULL);
CREATE UNIQUE INDEX notifications_recorded_once ON notifications (message_id, user_id) WHERE status = 'recorded';

-- Which tracking entry of the rule picked the message (rules.Hit): the
-- field of the rule shape ('mine', 'packages', 'topics', …) and the entry as
-- the rule spelled it ('python-*'); NULL for notifications made before.
ALTER TABLE notifications
    ADD COLUMN hit_field text,
    ADD COLUMN hit_entry text;

-- The address a session's sign-in proved: the one the emailed link went to
-- (or an OpenID provider's verified address). An email destination with
-- that address needs no confirmation mail: signing in was the proof.
ALTER TABLE sessions ADD COLUMN signed_in_email text;
