-- RFC 7591 dynamic client registration and RFC 7592 management.
--
-- client_registrations: one row per self-registered client: who let it in
-- (`open`, or the id of the initial access token it presented) and the
-- fingerprint of its registration access token (RFC 7592). A client
-- registered by an admin or the CLI has no row. The row goes with its
-- client.
CREATE TABLE client_registrations (
    client_id         TEXT PRIMARY KEY NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    registered_by     TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    created_at        TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX client_registrations_token ON client_registrations (token_fingerprint);

-- Initial access tokens (RFC 7591 §3): what an admin hands out when
-- registration is `token`. Stored as a fingerprint; counted per use.
CREATE TABLE initial_access_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    revoked_at  TIMESTAMP,
    created_by  TEXT
);
CREATE UNIQUE INDEX initial_access_tokens_fingerprint ON initial_access_tokens (fingerprint);
