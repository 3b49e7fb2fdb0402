DROP TABLE api_key_uses;
DROP TABLE api_key_daily_usage;
