-- Retention (issue 14): the message log is partitioned by day, so that
-- keeping FMN_RETENTION of it means dropping whole partitions, never
-- deleting rows one by one (store/retention.go makes them ahead and drops
-- the old ones).
--
-- messages becomes PARTITION BY RANGE (received_at), one partition a UTC
-- day, named messages_pYYYYMMDD. Its existing rows are copied over: this
-- migration converts an existing database. What changes for the rest:
--
-- * A unique index on a partitioned table must contain the partition key,
--   so msg_id is no longer UNIQUE: storing is still idempotent on msg_id,
--   under advisory locks and a check against the partitions the message
--   can be in (store/ingest.go). Later migrations must not add a UNIQUE
--   index or constraint on messages without received_at in it.
-- * The primary key is (id, received_at); id stays unique by its sequence.
-- * notifications.message_id can no longer reference messages (a foreign
--   key to a partitioned table needs the partition key): a notification is
--   deleted with its message's partition, by the job, in the same
--   transaction (driven by that partition's rows and the index on
--   notifications (message_id, …), so it never scans the whole table).
-- * Digests are deleted by age with the notifications they held; an index
--   on created_at serves that.

ALTER TABLE notifications DROP CONSTRAINT notifications_message_id_fkey;

-- Refuse what this conversion does not know how to carry over, rather
-- than lose it silently: triggers on messages, other foreign keys to it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'messages'::regclass AND NOT tgisinternal) THEN
        RAISE EXCEPTION 'messages has triggers; migration 0011 must learn to move them';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = 'messages'::regclass) THEN
        RAISE EXCEPTION 'a foreign key references messages; migration 0011 must learn to move it';
    END IF;
END $$;

ALTER TABLE messages RENAME TO messages_unpartitioned;
CREATE TABLE messages (LIKE messages_unpartitioned
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS INCLUDING STATISTICS)
    PARTITION BY RANGE (received_at);
ALTER SEQUENCE messages_id_seq OWNED BY messages.id;

-- Every index of the old table moves to the new one under its name (the
-- old ones are renamed out of the way first), whichever migrations made
-- them; the two unique ones are replaced below.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def, x.indisunique AS uniq
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = 'messages_unpartitioned'::regclass
             ORDER BY i.relname
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.name, left(r.name, 40) || '_unpartitioned');
        IF r.name IN ('messages_pkey', 'messages_msg_id_key') THEN
            CONTINUE;
        END IF;
        IF r.uniq THEN
            RAISE EXCEPTION 'unique index % on messages: a partitioned table needs received_at in it', r.name;
        END IF;
        EXECUTE format('CREATE INDEX %I ON messages %s', r.name, substring(r.def from ' USING .*$'));
    END LOOP;
END $$;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (id, received_at);
-- Dedupe looks msg_id up in the partitions a message can be in.
CREATE INDEX messages_msg_id ON messages (msg_id);

-- A partition for every UTC day holding messages, and for yesterday to a
-- week ahead (the job keeps making them ahead; the ingester makes one
-- itself if it ever finds none).
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN
        SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM messages_unpartitioned
        UNION
        SELECT g::date FROM generate_series((now() AT TIME ZONE 'UTC')::date - 1,
                                            (now() AT TIME ZONE 'UTC')::date + 7, interval '1 day') g
        ORDER BY 1
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
            'messages_p' || to_char(d, 'YYYYMMDD'),
            d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;

INSERT INTO messages SELECT * FROM messages_unpartitioned;
DROP TABLE messages_unpartitioned;

CREATE INDEX digests_created ON digests (created_at);
