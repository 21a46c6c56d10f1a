-- Identity and ownership ("my packages").
--
-- Identity: a user's name is their bus name. An account signed in through
-- OpenID Connect is bound to the provider's issuer and subject, never to the
-- name alone (a provider may hand a released name to someone else); an
-- emailed first sign-in waits, on its spent link, for the person to choose
-- a name.
--
-- Ownership: who maintains which dist-git artifact (a Pagure project in the
-- rpms, container, modules or flatpaks namespace), fetched for the users and
-- groups some enabled rule refers to, and who belongs to which group (the
-- OIDC groups claim, the account system's bus messages). Every change to
-- either is logged beside the rule change log of 0003, under the same
-- version counter, so a running matcher applies just that change.

ALTER TABLE users
    ADD COLUMN oidc_issuer  text,
    ADD COLUMN oidc_subject text,
    ADD CONSTRAINT users_oidc_pair CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    ADD CONSTRAINT users_oidc_identity UNIQUE (oidc_issuer, oidc_subject);

-- A first emailed sign-in: the spent link's row keeps the hash of a
-- short-lived secret (in the browser's cookie) until a name is chosen.
ALTER TABLE login_links
    ADD COLUMN signup_hash bytea UNIQUE,
    ADD COLUMN signup_expires_at timestamptz;

-- Users and groups of dist-git whose projects fmn keeps: those some enabled
-- rule names (track.owned: its owner; owned_by; groups; my_groups: the
-- owner's groups). fetched_at is the last complete fetch; error the last
-- failure (matching goes on with what is stored).
CREATE TABLE distgit_principals (
    kind        text NOT NULL CHECK (kind IN ('user', 'group')),
    name        text NOT NULL,
    wanted_at   timestamptz NOT NULL DEFAULT now(),
    fetched_at  timestamptz,
    error       text,
    error_at    timestamptz,
    PRIMARY KEY (kind, name)
);

-- Who maintains what: one row per project and principal with a maintaining
-- role (a user: owner, admin, commit or collaborator; a group: admin, commit
-- or collaborator). Only principals of distgit_principals are kept.
CREATE TABLE distgit_access (
    namespace      text NOT NULL CHECK (namespace IN ('rpms', 'container', 'modules', 'flatpaks')),
    project        text NOT NULL,
    principal_kind text NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal      text NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'commit', 'collaborator')),
    PRIMARY KEY (namespace, project, principal_kind, principal)
);
CREATE INDEX distgit_access_principal ON distgit_access (principal_kind, principal);

-- When each project was last read whole (GET /api/0/<namespace>/<name>,
-- asked for by a bus message): a principal's listing begun before that
-- does not overrule it.
CREATE TABLE distgit_projects (
    namespace  text NOT NULL,
    project    text NOT NULL,
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, project)
);

-- Projects the bus says changed, waiting to be read again. Written in the
-- transaction that stores the message, so none is lost to a crash.
CREATE TABLE distgit_requests (
    id           bigserial PRIMARY KEY,
    namespace    text NOT NULL,
    project      text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION distgit_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fmn_distgit', '');
    RETURN NULL;
END $$;
CREATE TRIGGER distgit_requests_inserted AFTER INSERT ON distgit_requests
    FOR EACH STATEMENT EXECUTE FUNCTION distgit_wake();

-- The refresher's last run, for /admin.
CREATE TABLE distgit_status (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at    timestamptz,
    finished_at   timestamptz,
    fetched       integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    error         text,
    error_at      timestamptz
);
INSERT INTO distgit_status DEFAULT VALUES;

-- Group membership by bus name. source says who added it: the OIDC groups
-- claim at a sign-in (the whole list), or the account system on the bus
-- (one addition or removal).
CREATE TABLE group_members (
    user_name  text NOT NULL,
    group_name text NOT NULL,
    source     text NOT NULL CHECK (source IN ('oidc', 'bus')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, group_name)
);
CREATE INDEX group_members_group ON group_members (group_name);

-- The ownership change log: per version, which artifacts ('rpms/python-foo')
-- changed owners and whose memberships ('alice') changed. Pruned after a day
-- like rule_changes; logged_after then moves past the pruned versions.
CREATE TABLE ownership_changes (
    version    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('artifact', 'member')),
    key        text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, kind, key)
);
CREATE INDEX ownership_changes_changed_at ON ownership_changes (changed_at);

CREATE FUNCTION log_ownership_changes(kind text, keys text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    IF keys IS NULL OR cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    UPDATE rules_version SET version = version + 1 RETURNING version INTO v;
    INSERT INTO ownership_changes (version, kind, key)
        SELECT v, kind, k FROM (SELECT DISTINCT unnest(keys) AS k) d;
    WITH gone AS (
        DELETE FROM ownership_changes WHERE changed_at < now() - interval '1 day' RETURNING version
    )
    UPDATE rules_version SET logged_after = greatest(logged_after, (SELECT max(version) FROM gone))
        WHERE EXISTS (SELECT 1 FROM gone);
    PERFORM pg_notify('fmn_rules', v::text);
END $$;

CREATE FUNCTION distgit_access_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_ownership_changes('artifact', ARRAY(SELECT namespace || '/' || project FROM new_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION distgit_access_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_ownership_changes('artifact', ARRAY(SELECT namespace || '/' || project FROM old_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION distgit_access_log_both() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A new role alone does not change who maintains what.
    PERFORM log_ownership_changes('artifact', ARRAY(SELECT namespace || '/' || project FROM (
        (SELECT namespace, project, principal_kind, principal FROM old_rows
         EXCEPT SELECT namespace, project, principal_kind, principal FROM new_rows)
        UNION
        (SELECT namespace, project, principal_kind, principal FROM new_rows
         EXCEPT SELECT namespace, project, principal_kind, principal FROM old_rows)) d));
    RETURN NULL;
END $$;
CREATE TRIGGER distgit_access_inserted AFTER INSERT ON distgit_access REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION distgit_access_log_new();
CREATE TRIGGER distgit_access_updated AFTER UPDATE ON distgit_access REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION distgit_access_log_both();
CREATE TRIGGER distgit_access_deleted AFTER DELETE ON distgit_access REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION distgit_access_log_old();

CREATE FUNCTION group_members_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_ownership_changes('member', ARRAY(SELECT user_name FROM new_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION group_members_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_ownership_changes('member', ARRAY(SELECT user_name FROM old_rows));
    RETURN NULL;
END $$;
CREATE FUNCTION group_members_log_both() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A new source alone does not change who is in which group.
    PERFORM log_ownership_changes('member', ARRAY(SELECT user_name FROM (
        (SELECT user_name, group_name FROM old_rows EXCEPT SELECT user_name, group_name FROM new_rows)
        UNION
        (SELECT user_name, group_name FROM new_rows EXCEPT SELECT user_name, group_name FROM old_rows)) d));
    RETURN NULL;
END $$;
CREATE TRIGGER group_members_inserted AFTER INSERT ON group_members REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_log_new();
CREATE TRIGGER group_members_updated AFTER UPDATE ON group_members REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_log_both();
CREATE TRIGGER group_members_deleted AFTER DELETE ON group_members REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_log_old();

-- The preview (store/preview.go) over the new kinds: who did it, and the
-- typed artifacts of 0007.
CREATE INDEX messages_agent ON messages (agent);
CREATE INDEX messages_containers ON messages USING gin (containers);
CREATE INDEX messages_modules ON messages USING gin (modules);
CREATE INDEX messages_flatpaks ON messages USING gin (flatpaks);
CREATE INDEX messages_containers_trgm ON messages USING gin (fmn_joined(containers) gin_trgm_ops);
CREATE INDEX messages_modules_trgm ON messages USING gin (fmn_joined(modules) gin_trgm_ops);
CREATE INDEX messages_flatpaks_trgm ON messages USING gin (fmn_joined(flatpaks) gin_trgm_ops);
