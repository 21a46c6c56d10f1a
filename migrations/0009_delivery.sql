-- One delivery path (issue 12): Matrix as a fourth channel, one
-- confirmation limiter for every channel, and River jobs of one kind per
-- purpose instead of one per channel.

ALTER TABLE destinations DROP CONSTRAINT destinations_kind_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_kind_check
    CHECK (kind IN ('email', 'irc', 'matrix', 'push'));

-- Matrix users talk to the bot: their destinations are found by address.
CREATE INDEX destinations_matrix_address ON destinations (address) WHERE kind = 'matrix';

-- One confirmation log for every channel (confirm_sends had email's,
-- channel_confirm_sends the others'): each row is one confirmation asked
-- for, by channel and address key (see fmn.AddressKey), and by user.
ALTER TABLE confirm_sends ADD COLUMN kind text NOT NULL DEFAULT 'email';
ALTER TABLE confirm_sends ALTER COLUMN user_id DROP NOT NULL;
-- Earlier rows recorded every kind under its plain address.
UPDATE confirm_sends SET kind = CASE
    WHEN address LIKE '{%' THEN 'push'
    WHEN address LIKE '%@%' THEN 'email'
    ELSE 'irc' END,
  address = CASE WHEN address LIKE '%@%' THEN lower(regexp_replace(address, '\+[^@]*@', '@'))
    WHEN address LIKE '{%' THEN address
    ELSE lower(translate(address, '[]\~', '{}|^')) END;
INSERT INTO confirm_sends (kind, address, created_at)
    SELECT kind, address, sent_at FROM channel_confirm_sends;
DROP TABLE channel_confirm_sends;
DROP INDEX confirm_sends_address;
CREATE INDEX confirm_sends_kind_address ON confirm_sends (kind, address, created_at);
CREATE INDEX confirm_sends_kind ON confirm_sends (kind, created_at);

-- The direct room the bot made for each Matrix destination. Forgotten
-- (and made anew at the next send) when its user leaves it.
CREATE TABLE matrix_rooms (
    destination_id bigint PRIMARY KEY REFERENCES destinations(id) ON DELETE CASCADE,
    room_id        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX matrix_rooms_room ON matrix_rooms (room_id);

-- The bot's login when it signs in with a password: kept, because the
-- homeserver recognises a repeated send by its transaction id per access
-- token, and a new login per start would forget them. Also where the sync
-- loop resumes (next_batch).
CREATE TABLE matrix_session (
    homeserver   text PRIMARY KEY,
    user_id      text NOT NULL,
    access_token text NOT NULL,
    next_batch   text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Delivery jobs are of one kind per purpose now, on each channel's queue;
-- jobs queued by an older fmn keep their arguments and change their kind.
-- (On a new database River's tables do not exist yet.)
DO $$
BEGIN
  IF to_regclass('river_job') IS NOT NULL THEN
    UPDATE river_job SET kind = 'notify'
      WHERE kind IN ('email_notification', 'irc_notification', 'push_notification');
    UPDATE river_job SET kind = 'confirm'
      WHERE kind IN ('email_confirm', 'irc_confirm', 'push_confirm');
  END IF;
END $$;
