-- message_names' trigger (0014) collected every batch's names from the
-- inserted rows and probed the table for each, a tenth of the batch's
-- database time, for the same few thousand names batch after batch. The
-- ingester now remembers which names the table holds and inserts only the
-- new ones itself (store.KnownNames); its transactions say so with
-- fmn.names_stored = 'on', and the trigger stays out of them. Every other
-- insert (tests, a hand-made row) still fills the table through it.
DROP TRIGGER messages_inserted ON messages;
CREATE TRIGGER messages_inserted AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (coalesce(current_setting('fmn.names_stored', true), '') <> 'on')
    EXECUTE FUNCTION messages_names();
