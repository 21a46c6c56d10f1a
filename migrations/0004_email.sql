-- Email delivery (issue 5): the send record that keeps a notification from
-- being mailed twice, digest items waiting for their digest, the digests
-- themselves, confirmation sends (for rate limits), and the key that signs
-- one-click unsubscribe links.

-- 'unknown': a worker stopped between handing the mail to the SMTP server
-- and recording the answer. Such a notification is never sent again (a
-- second copy is worse than a possibly missing one); the owner sees why.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'unknown'));

ALTER TABLE notifications
    -- How many times a send was started; a claim bumps it before the send.
    ADD COLUMN send_attempts int NOT NULL DEFAULT 0,
    ADD COLUMN sending_at timestamptz,
    -- Set when the notification waits for a digest (digest policy or quiet
    -- hours) instead of being mailed on its own.
    ADD COLUMN held_at timestamptz,
    -- The digest that carried (or is carrying) it.
    ADD COLUMN digest_id bigint;

CREATE TABLE digests (
    id             bigserial PRIMARY KEY,
    destination_id bigint NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    -- sending: formed and handed to the mailer; like a notification, a
    -- digest found 'sending' by a later run is never sent again.
    status         text NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'sent', 'failed', 'dead', 'unknown')),
    items          int NOT NULL,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz
);
CREATE INDEX digests_destination ON digests (destination_id, id DESC);
CREATE INDEX digests_sending ON digests (created_at) WHERE status = 'sending';

ALTER TABLE notifications ADD CONSTRAINT notifications_digest_fk
    FOREIGN KEY (digest_id) REFERENCES digests(id) ON DELETE SET NULL;
CREATE INDEX notifications_held ON notifications (destination_id, id)
    WHERE held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending';
CREATE INDEX notifications_digest ON notifications (digest_id) WHERE digest_id IS NOT NULL;

-- One row per confirmation mail queued, so that fmn cannot be used to
-- mail-bomb an address (per address) or by one account (per user).
CREATE TABLE confirm_sends (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX confirm_sends_address ON confirm_sends (lower(address), created_at);
CREATE INDEX confirm_sends_user ON confirm_sends (user_id, created_at);

-- Server-side secrets made on first use (the unsubscribe HMAC key), so that
-- every fmn process sharing the database signs and checks alike.
CREATE TABLE secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
