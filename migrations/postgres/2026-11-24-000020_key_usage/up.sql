-- What each API key was used for, written by the background flush (never
-- on the request path). Per key and UTC day, how many uses were allowed,
-- refused by a restriction (IP, referrer, endpoint, permission) and
-- refused by the rate limit; `day` is that day's midnight. The flush adds
-- to a row with an upsert, so instances flushing together both count.
CREATE TABLE api_key_daily_usage (
    key_id       TEXT NOT NULL REFERENCES api_keys (id),
    day          TIMESTAMP NOT NULL,
    allowed      BIGINT NOT NULL DEFAULT 0,
    refused      BIGINT NOT NULL DEFAULT 0,
    rate_limited BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
CREATE INDEX api_key_daily_usage_day ON api_key_daily_usage (day);

-- The last uses of each key (the flush keeps 50 per key): when, from
-- which IP, the method and the path (never the query string), and the
-- outcome. `seq` orders uses noted in the same microsecond.
CREATE TABLE api_key_uses (
    id      TEXT PRIMARY KEY NOT NULL,
    key_id  TEXT NOT NULL REFERENCES api_keys (id),
    used_at TIMESTAMP NOT NULL,
    seq     BIGINT NOT NULL,
    ip      TEXT,
    method  TEXT NOT NULL,
    path    TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('allowed', 'refused', 'rate_limited'))
);
CREATE INDEX api_key_uses_key ON api_key_uses (key_id, used_at, seq);
CREATE INDEX api_key_uses_used_at ON api_key_uses (used_at);
