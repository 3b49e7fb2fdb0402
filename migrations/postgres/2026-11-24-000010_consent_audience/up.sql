-- Consent is remembered per audience as well: approving a client for the
-- server's own API does not approve it for a resource server. The server's
-- own API is the empty audience, which is what every earlier row meant.
-- The table is rebuilt (SQLite cannot change a primary key), through a
-- plain copy so that the new primary key keeps its usual name.
CREATE TABLE consents_copy AS SELECT user_id, client_id, scope, granted_at FROM consents;
DROP TABLE consents;
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id),
    client_id  TEXT NOT NULL REFERENCES clients (id),
    audience   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id, audience, scope)
);
INSERT INTO consents (user_id, client_id, audience, scope, granted_at)
    SELECT user_id, client_id, '', scope, granted_at FROM consents_copy;
DROP TABLE consents_copy;
