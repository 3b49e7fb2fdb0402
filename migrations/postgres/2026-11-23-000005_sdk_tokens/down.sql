DROP TABLE sdk_sessions;
DROP TABLE sdk_tokens;
