-- IRC and Web Push: the VAPID key pair, confirmation rate limits, and the
-- lookup of IRC destinations by nick.

-- The VAPID key pair push services know fmn by. Generated on first start and
-- kept, because every browser subscription is bound to the public key: a new
-- pair would silently orphan them all. (FMN_VAPID_* overrides it.)
CREATE TABLE push_vapid_keys (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    public_key  text NOT NULL,
    private_key text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every confirmation sent, by channel and (normalised) address, so that
-- neither one address nor the whole channel can be used to spam: the
-- confirmation is the one thing fmn sends to an address nobody vouched for.
CREATE TABLE channel_confirm_sends (
    id       bigserial PRIMARY KEY,
    kind     text NOT NULL,
    address  text NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_confirm_sends_kind_address ON channel_confirm_sends (kind, address, sent_at);
CREATE INDEX channel_confirm_sends_sent ON channel_confirm_sends (sent_at);

-- IRC nicks compare under the rfc1459 case mapping (ASCII, and []\~ are the
-- upper case of {}|^): the bot finds a sender's destinations by this key.
CREATE INDEX destinations_irc_nick ON destinations (lower(translate(address, '[]\~', '{}|^'))) WHERE kind = 'irc';
