-- OpenID Connect and the per-client PKCE policy.
--
-- clients: whether the code flow must use PKCE (only a confidential client
-- may opt out), the algorithm of its ID tokens (NULL: the server's
-- default, RS256), and the URIs it may send a person to after logout.
ALTER TABLE clients ADD COLUMN require_pkce BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE clients ADD COLUMN id_token_alg TEXT;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
-- A code, and the grant it starts, remember what its ID tokens say: the
-- request's nonce, when the person signed in, and the session (sid).
-- An empty code_challenge is a code issued without PKCE.
ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
ALTER TABLE authorization_codes ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
ALTER TABLE grants ADD COLUMN nonce TEXT;
ALTER TABLE grants ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE grants ADD COLUMN sid TEXT;
