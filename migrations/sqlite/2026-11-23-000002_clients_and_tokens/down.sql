DROP TABLE used_assertions;
DROP TABLE revoked_tokens;
DROP TABLE resource_servers;
DROP TABLE client_secrets;
DROP TABLE clients;
