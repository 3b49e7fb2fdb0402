-- Keys that sign access tokens. The private part is sealed (AES-256-GCM)
-- under the master key; the public part is the JWK that /.well-known/jwks.json
-- publishes. Lifecycle: next (published, signs nothing) → active (signs) →
-- retired (published until `unpublish_at`, when its last token has expired).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('RS256', 'ES256', 'EdDSA')),
    state        TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    public_jwk   TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    activates_at TIMESTAMP NOT NULL,
    retired_at   TIMESTAMP,
    unpublish_at TIMESTAMP
);
CREATE INDEX signing_keys_state ON signing_keys (algorithm, state);
