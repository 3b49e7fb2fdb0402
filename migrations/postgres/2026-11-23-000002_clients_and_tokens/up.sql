-- OAuth clients. `id` is the public client_id. Lists are stored as
-- space-separated text (scopes, grant types, audiences) or a JSON array
-- (redirect URIs, which may hold any character but space is not special).
CREATE TABLE clients (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    client_type   TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '',
    audiences     TEXT NOT NULL DEFAULT '',
    auth_method   TEXT NOT NULL CHECK (auth_method IN
        ('client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none')),
    jwks          TEXT,
    owner_id      TEXT REFERENCES users (id),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX clients_owner ON clients (owner_id);

-- Client secrets: a SHA-256 fingerprint of the server-generated secret, and
-- for clients that sign HS256 assertions a copy sealed under the master key.
-- Two may be live during a rotation; `expires_at` ends the old one.
CREATE TABLE client_secrets (
    id          TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL REFERENCES clients (id),
    fingerprint TEXT NOT NULL,
    sealed      TEXT,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP
);
CREATE UNIQUE INDEX client_secrets_fingerprint ON client_secrets (fingerprint);
CREATE INDEX client_secrets_client ON client_secrets (client_id);

-- Resource servers (audiences). Each has a secret to call introspection
-- with; an HS256 one also verifies its tokens with it, so the server keeps
-- a sealed copy to sign them.
CREATE TABLE resource_servers (
    id                 TEXT PRIMARY KEY NOT NULL,
    identifier         TEXT NOT NULL,
    name               TEXT NOT NULL,
    scopes             TEXT NOT NULL DEFAULT '',
    algorithm          TEXT NOT NULL CHECK (algorithm IN ('RS256', 'ES256', 'EdDSA', 'HS256')),
    secret_fingerprint TEXT NOT NULL,
    secret_sealed      TEXT,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX resource_servers_identifier ON resource_servers (identifier);

-- Revoked access tokens, by jti, kept until the token would have expired.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

-- jti values of client assertions already used (RFC 7523 §3 replay
-- protection), kept until the assertion expires.
CREATE TABLE used_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_assertions_expires_at ON used_assertions (expires_at);
