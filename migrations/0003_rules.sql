-- The rules engine: a log of which rules each change touched, so that a
-- running matcher applies only those changes (rules.Live) instead of
-- reloading every rule; and indexes for the rule preview over stored
-- messages (store/preview.go).

-- One row per version bump and rule it touched. A matcher at version N reads
-- the rows above N, up to the version its own snapshot sees, in one
-- statement: version order is commit order, because every bump holds the
-- rules_version row lock until its transaction ends.
CREATE TABLE rule_changes (
    version    bigint NOT NULL,
    rule_id    bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, rule_id)
);
CREATE INDEX rule_changes_changed_at ON rule_changes (changed_at);

-- Every version above logged_after is fully logged; older rows are pruned
-- after a day, and a matcher further behind than that reloads everything.
ALTER TABLE rules_version ADD COLUMN logged_after bigint NOT NULL DEFAULT 0;
UPDATE rules_version SET logged_after = version;

-- The statement-level bump of 0001 said "something changed"; these triggers
-- say what, and bump only when a rule that can match is concerned.
DROP TRIGGER rules_changed ON rules;
DROP TRIGGER rule_destinations_changed ON rule_destinations;
DROP TRIGGER destinations_changed ON destinations;
DROP TRIGGER users_changed ON users;
DROP FUNCTION bump_rules_version();

CREATE FUNCTION log_rule_changes(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    UPDATE rules_version SET version = version + 1 RETURNING version INTO v;
    INSERT INTO rule_changes (version, rule_id)
        SELECT v, id FROM (SELECT DISTINCT unnest(ids) AS id) d;
    WITH gone AS (
        DELETE FROM rule_changes WHERE changed_at < now() - interval '1 day' RETURNING version
    )
    UPDATE rules_version SET logged_after = greatest(logged_after, (SELECT max(version) FROM gone))
        WHERE EXISTS (SELECT 1 FROM gone);
    PERFORM pg_notify('fmn_rules', v::text);
END $$;

-- Transition tables allow one event per trigger, hence the pairs below.
CREATE FUNCTION rules_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION rules_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END $$;
CREATE TRIGGER rules_inserted AFTER INSERT ON rules REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rules_log_new();
CREATE TRIGGER rules_updated AFTER UPDATE ON rules REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rules_log_new();
CREATE TRIGGER rules_deleted AFTER DELETE ON rules REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rules_log_old();

CREATE FUNCTION rule_destinations_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(SELECT rule_id FROM new_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION rule_destinations_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(SELECT rule_id FROM old_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION rule_destinations_log_both() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(SELECT rule_id FROM old_rows UNION SELECT rule_id FROM new_rows));
    RETURN NULL;
END $$;
CREATE TRIGGER rule_destinations_inserted AFTER INSERT ON rule_destinations REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rule_destinations_log_new();
CREATE TRIGGER rule_destinations_updated AFTER UPDATE ON rule_destinations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rule_destinations_log_both();
CREATE TRIGGER rule_destinations_deleted AFTER DELETE ON rule_destinations REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rule_destinations_log_old();

-- A destination matters to the matcher while it is enabled and confirmed;
-- deleting one cascades to rule_destinations, logged above.
CREATE FUNCTION destinations_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(
        SELECT rd.rule_id FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        JOIN rule_destinations rd ON rd.destination_id = n.id
        WHERE n.enabled IS DISTINCT FROM o.enabled
           OR n.confirmed_at IS DISTINCT FROM o.confirmed_at
           OR n.user_id IS DISTINCT FROM o.user_id));
    RETURN NULL;
END $$;
CREATE TRIGGER destinations_updated AFTER UPDATE ON destinations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION destinations_log();

-- "mine" and "not my actions" compare with the owner's name; deleting a
-- user cascades to the rules, logged above.
CREATE FUNCTION users_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_rule_changes(ARRAY(
        SELECT r.id FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        JOIN rules r ON r.user_id = n.id
        WHERE n.name IS DISTINCT FROM o.name));
    RETURN NULL;
END $$;
CREATE TRIGGER users_updated AFTER UPDATE ON users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_log();

-- Preview: a rule translated to SQL over the stored metadata. Exact values
-- use the GIN indexes of 0001 and the btree below; globs become LIKE
-- patterns served by trigram indexes. pg_trgm ships with PostgreSQL and is
-- a trusted extension: a database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- fmn_joined lays an array out as "\nA\nB\n", so that one trigram index
-- serves "some element matches this glob" (rechecked per element).
CREATE FUNCTION fmn_joined(text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT E'\n' || array_to_string($1, E'\n') || E'\n' $$;

CREATE INDEX messages_topic ON messages (topic text_pattern_ops);
CREATE INDEX messages_topic_trgm ON messages USING gin (topic gin_trgm_ops);
CREATE INDEX messages_usernames_trgm ON messages USING gin (fmn_joined(usernames) gin_trgm_ops);
CREATE INDEX messages_packages_trgm ON messages USING gin (fmn_joined(packages) gin_trgm_ops);
