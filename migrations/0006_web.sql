-- The web UI: browser sessions, emailed sign-in links, and the secret that
-- names a user's Atom feed. Every secret is kept only as its SHA-256, as API
-- tokens are: a leaked table lets nobody in.

CREATE TABLE sessions (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- A sign-in request. The row is written when the address asks; the token is
-- made by the job that mails it, so it never sits in plain text in the job
-- table. used_at makes a link single-use.
CREATE TABLE login_links (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL,
    token_hash  bytea UNIQUE,
    expires_at  timestamptz,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_links_email ON login_links (lower(email), created_at DESC);

ALTER TABLE users ADD COLUMN feed_token_hash bytea UNIQUE;
CREATE INDEX users_email ON users (lower(email));
