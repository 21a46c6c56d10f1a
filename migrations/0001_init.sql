-- Users, their API tokens, destinations, rules, the message log and the
-- notifications derived from it. River's own tables are created by River's
-- migrator, run right after these files.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    email       text,
    timezone    text NOT NULL DEFAULT 'UTC',
    -- Quiet hours in the user's time zone; both NULL = none. Mail held
    -- during quiet hours goes out as one digest after.
    quiet_start time,
    quiet_end   time,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a token is kept: a leaked table grants nothing.
CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE TABLE destinations (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('email', 'irc', 'push')),
    address       text NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    -- {"mode":"immediate"} or {"mode":"digest", ...}; shaped by the delivery package.
    delivery      jsonb NOT NULL DEFAULT '{"mode":"immediate"}',
    muted_until   timestamptz,
    confirmed_at  timestamptz,
    -- The confirmation code is mailed; only its hash is kept.
    confirm_hash  bytea,
    confirm_expires_at timestamptz,
    failing_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, kind, address)
);
CREATE UNIQUE INDEX destinations_confirm_hash ON destinations (confirm_hash) WHERE confirm_hash IS NOT NULL;

CREATE TABLE rules (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- The track and filters objects of the rule shape; validated by the rules package.
    track       jsonb NOT NULL DEFAULT '{}',
    filters     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_user ON rules (user_id);

CREATE TABLE rule_destinations (
    rule_id        bigint NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
    destination_id bigint NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, destination_id)
);
CREATE INDEX rule_destinations_destination ON rule_destinations (destination_id);

-- Every change that can change what matches bumps one counter, so a matcher
-- can tell cheaply, inside its own transaction, whether its copy is current.
CREATE TABLE rules_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO rules_version VALUES (true, 1);

CREATE FUNCTION bump_rules_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rules_version SET version = version + 1;
    PERFORM pg_notify('fmn_rules', '');
    RETURN NULL;
END $$;

CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
CREATE TRIGGER rule_destinations_changed AFTER INSERT OR UPDATE OR DELETE ON rule_destinations
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
CREATE TRIGGER destinations_changed AFTER INSERT OR UPDATE OF enabled, confirmed_at, user_id OR DELETE ON destinations
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OF name OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();

-- The firehose log. msg_id is the fedmsg id (or one derived from the
-- content for old messages without one); storing is idempotent on it.
CREATE TABLE messages (
    id          bigserial PRIMARY KEY,
    msg_id      text NOT NULL UNIQUE,
    topic       text NOT NULL,
    app         text NOT NULL DEFAULT '',
    agent       text NOT NULL DEFAULT '',
    usernames   text[] NOT NULL DEFAULT '{}',
    packages    text[] NOT NULL DEFAULT '{}',
    summary     text NOT NULL DEFAULT '',
    link        text NOT NULL DEFAULT '',
    severity    text NOT NULL DEFAULT '',
    sent_at     timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    endpoint    text NOT NULL DEFAULT '',
    envelope    jsonb NOT NULL
);
CREATE INDEX messages_received ON messages (received_at DESC);
CREATE INDEX messages_usernames ON messages USING gin (usernames);
CREATE INDEX messages_packages ON messages USING gin (packages);
CREATE INDEX messages_app ON messages (app, received_at DESC);

-- One row per message and destination: the unique key makes a replayed or
-- doubly received message harmless.
CREATE TABLE notifications (
    id             bigserial PRIMARY KEY,
    message_id     bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    destination_id bigint NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    user_id        bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rule_id        bigint REFERENCES rules(id) ON DELETE SET NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead')),
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    UNIQUE (message_id, destination_id)
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);

-- Live views (the SSE stream) learn of new notifications through this
-- channel, whichever process created them; they read the rows themselves.
CREATE FUNCTION notify_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fmn_notifications', '');
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_created AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notify_notifications();
