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
-- Deferred to the commit: the row lock on cache_version is taken only once
-- the transaction's own statements are done, so it cannot deadlock with the
-- row locks they took, and is held for the commit alone.
CREATE FUNCTION tessera_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_version SET version = version + 1 WHERE id = TG_ARGV[0]::integer;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER users_cache AFTER INSERT OR UPDATE OR DELETE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('1');
CREATE CONSTRAINT TRIGGER clients_cache AFTER INSERT OR UPDATE OR DELETE ON clients
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('2');
CREATE CONSTRAINT TRIGGER client_secrets_cache AFTER INSERT OR UPDATE OR DELETE ON client_secrets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('2');
CREATE CONSTRAINT TRIGGER resource_servers_cache AFTER INSERT OR UPDATE OR DELETE ON resource_servers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('3');
CREATE CONSTRAINT TRIGGER signing_keys_cache AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('4');
CREATE CONSTRAINT TRIGGER api_keys_cache AFTER INSERT OR UPDATE OF owner_id, client_id, name, key_type, mode, prefix, last4, fingerprint, permissions, allowed_ips, allowed_referrers, allowed_endpoints, rate_limit, expires_at, revoked_at, rotated_from OR DELETE ON api_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('5');
CREATE CONSTRAINT TRIGGER grants_cache AFTER UPDATE OF revoked_at OR DELETE ON grants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('6');
CREATE CONSTRAINT TRIGGER revoked_tokens_cache AFTER INSERT ON revoked_tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tessera_cache_changed('7');
