-- The bus consumer's memory of where each endpoint's numbered stream stood,
-- and the gaps it found in those streams.

-- The last seq_id stored from each endpoint, written in the transaction that
-- stores the messages, so that after a restart fmn knows what it missed.
CREATE TABLE bus_positions (
    endpoint   text PRIMARY KEY,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every gap seen in an endpoint's seq_id stream: after_seq and before_seq
-- are the messages on either side; recovered is how many of the missing
-- ones the publisher's replay endpoint gave back, missed how many are lost
-- (with the reason in error). The admin page lists these.
CREATE TABLE bus_gaps (
    id          bigserial PRIMARY KEY,
    endpoint    text NOT NULL,
    after_seq   bigint NOT NULL,
    before_seq  bigint NOT NULL,
    recovered   bigint NOT NULL DEFAULT 0,
    missed      bigint NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    detected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bus_gaps_detected ON bus_gaps (detected_at DESC);
