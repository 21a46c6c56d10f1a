-- Storing a message cost twice what it did before the message log grew its
-- new kinds: measured, the six trigram indexes (topic and the five joined
-- name lists) were half of the insert's database time, the GIN indexes of
-- the name arrays a fifth more, most of it spent on messages that have no
-- container, module or flatpak at all.
--
-- * The trigram indexes served only the preview's globs. The names a glob
--   can match are few (a few hundred topics, some tens of thousands of
--   users and packages), so they are kept once each in message_names,
--   filled by a statement trigger on the log; the preview finds the names a
--   glob matches there and the messages through the arrays' GIN indexes
--   (or topic's btree), as for names given literally. A name stays after
--   its last message is dropped by retention: it then matches nothing.
-- * The arrays' GIN indexes leave out empty arrays, which `&&` never
--   matches anyway; the preview says `col <> '{}'` beside each overlap so
--   that the planner may use them.

CREATE TABLE message_names (
    kind text NOT NULL CHECK (kind IN ('topic', 'usernames', 'packages', 'containers', 'modules', 'flatpaks')),
    name text NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX message_names_trgm ON message_names USING gin (name gin_trgm_ops);

-- The names of one message, as message_names keeps them.
CREATE FUNCTION fmn_names_of(m messages) RETURNS TABLE (kind text, name text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT v.kind, unnest(v.names)
    FROM (VALUES ('topic', ARRAY[m.topic]), ('usernames', m.usernames), ('packages', m.packages),
                 ('containers', m.containers), ('modules', m.modules), ('flatpaks', m.flatpaks)) AS v(kind, names)
$$;

-- One statement per batch of the ingester: the batch's names, in key order
-- (so that two ingesters adding the same new names never wait for each
-- other crosswise). A name already known costs one probe of the primary
-- key (ON CONFLICT checks it before inserting); a NOT EXISTS here became
-- an anti join hashing the whole table, under the plan plpgsql caches.
CREATE FUNCTION messages_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_names (kind, name)
    SELECT DISTINCT n.kind, n.name FROM new_rows r CROSS JOIN LATERAL fmn_names_of(r) n
    ORDER BY n.kind, n.name
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_inserted AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_names();
-- fmn never changes a stored message's names, but whoever does by hand
-- keeps the preview right.
CREATE TRIGGER messages_updated AFTER UPDATE ON messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_names();

INSERT INTO message_names (kind, name)
SELECT DISTINCT n.kind, n.name FROM messages m CROSS JOIN LATERAL fmn_names_of(m) n;

DROP INDEX messages_topic_trgm, messages_usernames_trgm, messages_packages_trgm,
    messages_containers_trgm, messages_modules_trgm, messages_flatpaks_trgm;
DROP INDEX messages_usernames, messages_packages, messages_containers, messages_modules, messages_flatpaks;
CREATE INDEX messages_usernames ON messages USING gin (usernames) WHERE usernames <> '{}';
CREATE INDEX messages_packages ON messages USING gin (packages) WHERE packages <> '{}';
CREATE INDEX messages_containers ON messages USING gin (containers) WHERE containers <> '{}';
CREATE INDEX messages_modules ON messages USING gin (modules) WHERE modules <> '{}';
CREATE INDEX messages_flatpaks ON messages USING gin (flatpaks) WHERE flatpaks <> '{}';

-- The history joins notifications to the log, which is partitioned by
-- received_at: by message id alone every partition's index is probed for
-- every notification (ninety days kept, ninety probes). Each notification
-- now carries its message's received_at, and the join names it, so that
-- only the message's own day is read.
ALTER TABLE notifications ADD COLUMN message_received_at timestamptz;
UPDATE notifications n SET message_received_at = m.received_at FROM messages m WHERE m.id = n.message_id;
-- A notification whose message is gone (none should be: they are dropped
-- together) would not show in the history either way.
DELETE FROM notifications WHERE message_received_at IS NULL;
ALTER TABLE notifications ALTER COLUMN message_received_at SET NOT NULL;

-- The envelope is most of a stored row, and pglz compressing the larger
-- ones was a tenth of the insert's time (perf on the backend); lz4 does
-- the same in a fraction of it. Partitions made later copy the setting
-- (store/retention.go). A server built without lz4 keeps pglz.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT 'messages'::regclass UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'messages'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN envelope SET COMPRESSION lz4', t);
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not supported by this server; the envelope stays compressed with pglz';
END $$;
