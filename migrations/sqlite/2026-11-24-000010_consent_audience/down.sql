-- Back to consent per user, client and scope. Only the consents for the
-- server's own API are kept: folding a resource server's consent into
-- them would widen what the person approved.
CREATE TABLE consents_copy AS SELECT user_id, client_id, scope, granted_at FROM consents WHERE audience = '';
DROP TABLE consents;
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id),
    client_id  TEXT NOT NULL REFERENCES clients (id),
    scope      TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);
INSERT INTO consents (user_id, client_id, scope, granted_at)
    SELECT user_id, client_id, scope, granted_at FROM consents_copy;
DROP TABLE consents_copy;
