-- Publishable SDK tokens (sdk_test_/sdk_live_): safe in a browser, good
-- only for opening an SDK session. Stored as an HMAC like API keys.
CREATE TABLE sdk_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id),
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    fingerprint TEXT NOT NULL,
    last4       TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);
CREATE UNIQUE INDEX sdk_tokens_fingerprint ON sdk_tokens (fingerprint);

-- Short-lived sessions a browser opens with an SDK token; the owner's back
-- end reads them with its API key.
CREATE TABLE sdk_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    token_id   TEXT NOT NULL REFERENCES sdk_tokens (id),
    owner_id   TEXT NOT NULL REFERENCES users (id),
    origin     TEXT,
    ip         TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
