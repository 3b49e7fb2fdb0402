-- API keys. The raw key is never stored: `fingerprint` is its HMAC-SHA256
-- under a key derived from the master key (lookups go by it). `prefix` and
-- `last4` are the display form. Lists are JSON arrays.
CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY NOT NULL,
    owner_id          TEXT NOT NULL REFERENCES users (id),
    client_id         TEXT REFERENCES clients (id),
    name              TEXT NOT NULL,
    key_type          TEXT NOT NULL CHECK (key_type IN ('secret', 'restricted')),
    mode              TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    prefix            TEXT NOT NULL,
    last4             TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    permissions       TEXT NOT NULL,
    allowed_ips       TEXT NOT NULL DEFAULT '[]',
    allowed_referrers TEXT NOT NULL DEFAULT '[]',
    allowed_endpoints TEXT NOT NULL DEFAULT '[]',
    rate_limit        BIGINT,
    created_at        TIMESTAMP NOT NULL,
    expires_at        TIMESTAMP,
    last_used_at      TIMESTAMP,
    revoked_at        TIMESTAMP,
    rotated_from      TEXT
);
CREATE UNIQUE INDEX api_keys_fingerprint ON api_keys (fingerprint);
CREATE INDEX api_keys_owner ON api_keys (owner_id);
