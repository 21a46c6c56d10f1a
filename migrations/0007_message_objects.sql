-- The other objects a message can be about besides users and packages:
-- FAS groups and dist-git's container, module and flatpak artifacts.
-- fedora-messaging carries each set in its headers; rules track them.
ALTER TABLE messages
    ADD COLUMN groups     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN containers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN modules    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN flatpaks   text[] NOT NULL DEFAULT '{}';
