-- Every write to a table that the in-memory caches copy bumps its kind's
-- row of cache_version in the writer's own transaction; each instance reads
-- it to know when to forget what it cached (src/store/feed.rs).
-- api_keys: not for last_used_at, which the usage flush writes every few
-- seconds. grants: only revocations and purges (new grants are unknown to
-- every cache). revoked_tokens: only new revocations.
-- One row per kind (src/store/feed.rs `Kind`): 1 users, 2 clients and
-- their secrets, 3 resource servers, 4 signing keys, 5 API keys, 6 grants,
-- 7 revoked tokens.
CREATE TABLE cache_version (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id BETWEEN 1 AND 7),
    version BIGINT NOT NULL
);
INSERT INTO cache_version (id, version) VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0);
CREATE TRIGGER users_cache_insert AFTER INSERT ON users
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER users_cache_update AFTER UPDATE ON users
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER users_cache_delete AFTER DELETE ON users
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER clients_cache_insert AFTER INSERT ON clients
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER clients_cache_update AFTER UPDATE ON clients
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER clients_cache_delete AFTER DELETE ON clients
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER client_secrets_cache_insert AFTER INSERT ON client_secrets
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER client_secrets_cache_update AFTER UPDATE ON client_secrets
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER client_secrets_cache_delete AFTER DELETE ON client_secrets
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 2;
END;
CREATE TRIGGER resource_servers_cache_insert AFTER INSERT ON resource_servers
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 3;
END;
CREATE TRIGGER resource_servers_cache_update AFTER UPDATE ON resource_servers
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 3;
END;
CREATE TRIGGER resource_servers_cache_delete AFTER DELETE ON resource_servers
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 3;
END;
CREATE TRIGGER signing_keys_cache_insert AFTER INSERT ON signing_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 4;
END;
CREATE TRIGGER signing_keys_cache_update AFTER UPDATE ON signing_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 4;
END;
CREATE TRIGGER signing_keys_cache_delete AFTER DELETE ON signing_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 4;
END;
CREATE TRIGGER api_keys_cache_insert AFTER INSERT ON api_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 5;
END;
CREATE TRIGGER api_keys_cache_update AFTER UPDATE OF owner_id, client_id, name, key_type, mode, prefix, last4, fingerprint, permissions, allowed_ips, allowed_referrers, allowed_endpoints, rate_limit, expires_at, revoked_at, rotated_from ON api_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 5;
END;
CREATE TRIGGER api_keys_cache_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 5;
END;
CREATE TRIGGER grants_cache_update AFTER UPDATE OF revoked_at ON grants
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 6;
END;
CREATE TRIGGER grants_cache_delete AFTER DELETE ON grants
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 6;
END;
CREATE TRIGGER revoked_tokens_cache_insert AFTER INSERT ON revoked_tokens
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = 7;
END;
