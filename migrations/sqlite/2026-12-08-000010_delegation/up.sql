-- Which credential of the actor made a change (issue #19): api_key:key_…,
-- access_token:cl_…, client_jwt:cl_… or session:ses_….
ALTER TABLE audit_events ADD COLUMN credential TEXT;
