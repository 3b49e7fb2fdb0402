DROP TABLE refresh_tokens;
DROP TABLE authorization_codes;
DROP TABLE grant_access_tokens;
DROP TABLE grants;
DROP TABLE consents;
DROP TABLE login_failures;
DROP TABLE sessions;
