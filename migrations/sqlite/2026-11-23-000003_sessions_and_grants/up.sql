-- Browser sessions. `id` is the SHA-256 fingerprint of the cookie value.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Failed sign-ins, per account (`email:…`) and per IP (`ip:…`), counted in
-- a sliding window to throttle guessing across every instance.
CREATE TABLE login_failures (
    id          TEXT PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, occurred_at);

-- Scopes a person granted a client, remembered per scope.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id),
    client_id  TEXT NOT NULL REFERENCES clients (id),
    scope      TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);

-- One authorization (a code redeemed, then its refresh tokens): the family
-- that reuse or replay revokes as a whole.
CREATE TABLE grants (
    id                TEXT PRIMARY KEY NOT NULL,
    client_id         TEXT NOT NULL REFERENCES clients (id),
    user_id           TEXT NOT NULL REFERENCES users (id),
    scope             TEXT NOT NULL,
    audience          TEXT NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    expires_at        TIMESTAMP NOT NULL,
    revoked_at        TIMESTAMP
);

-- Access tokens minted within a grant, so revoking the grant revokes them.
CREATE TABLE grant_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES grants (id),
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX grant_access_tokens_grant ON grant_access_tokens (grant_id);

-- Authorization codes, by fingerprint: single use, short-lived, bound to
-- everything the authorization request said.
CREATE TABLE authorization_codes (
    id                 TEXT PRIMARY KEY NOT NULL,
    client_id          TEXT NOT NULL REFERENCES clients (id),
    user_id            TEXT NOT NULL REFERENCES users (id),
    redirect_uri       TEXT NOT NULL,
    redirect_uri_given BOOLEAN NOT NULL,
    code_challenge     TEXT NOT NULL,
    scope              TEXT NOT NULL,
    audience           TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    used_at            TIMESTAMP,
    grant_id           TEXT
);

-- Refresh tokens, by fingerprint. Each use retires the token (`used_at`)
-- and issues its successor in the same grant.
CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES grants (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
