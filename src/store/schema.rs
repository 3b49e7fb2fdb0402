//! The one schema for both backends. Only types that map the same way on
//! SQLite and PostgreSQL are used: Text, Bool, BigInt, Timestamp (naive UTC).

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        actor -> Nullable<Text>,
        action -> Text,
        target -> Nullable<Text>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Text,
        credential -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        state -> Text,
        public_jwk -> Text,
        private_key -> Text,
        created_at -> Timestamp,
        activates_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        unpublish_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        client_type -> Text,
        redirect_uris -> Text,
        grant_types -> Text,
        scopes -> Text,
        audiences -> Text,
        auth_method -> Text,
        jwks -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        require_pkce -> Bool,
        id_token_alg -> Nullable<Text>,
        post_logout_redirect_uris -> Text,
    }
}

diesel::table! {
    client_secrets (id) {
        id -> Text,
        client_id -> Text,
        fingerprint -> Text,
        sealed -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    resource_servers (id) {
        id -> Text,
        identifier -> Text,
        name -> Text,
        scopes -> Text,
        algorithm -> Text,
        secret_fingerprint -> Text,
        secret_sealed -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        revoked_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    used_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(client_secrets -> clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(clients, client_secrets);

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Text,
        subject -> Text,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    consents (user_id, client_id, audience, scope) {
        user_id -> Text,
        client_id -> Text,
        audience -> Text,
        scope -> Text,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Text,
        scope -> Text,
        audience -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<Timestamp>,
        sid -> Nullable<Text>,
    }
}

diesel::table! {
    grant_access_tokens (jti) {
        jti -> Text,
        grant_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    authorization_codes (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        redirect_uri_given -> Bool,
        code_challenge -> Text,
        scope -> Text,
        audience -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        grant_id -> Nullable<Text>,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<Timestamp>,
        sid -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        grant_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(grants, grant_access_tokens, refresh_tokens, authorization_codes);

diesel::table! {
    api_keys (id) {
        id -> Text,
        owner_id -> Text,
        client_id -> Nullable<Text>,
        name -> Text,
        key_type -> Text,
        mode -> Text,
        prefix -> Text,
        last4 -> Text,
        fingerprint -> Text,
        permissions -> Text,
        allowed_ips -> Text,
        allowed_referrers -> Text,
        allowed_endpoints -> Text,
        rate_limit -> Nullable<BigInt>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        rotated_from -> Nullable<Text>,
    }
}

diesel::table! {
    sdk_tokens (id) {
        id -> Text,
        owner_id -> Text,
        mode -> Text,
        fingerprint -> Text,
        last4 -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sdk_sessions (id) {
        id -> Text,
        token_id -> Text,
        owner_id -> Text,
        origin -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_key_daily_usage (key_id, day) {
        key_id -> Text,
        day -> Timestamp,
        allowed -> BigInt,
        refused -> BigInt,
        rate_limited -> BigInt,
    }
}

diesel::table! {
    api_key_uses (id) {
        id -> Text,
        key_id -> Text,
        used_at -> Timestamp,
        seq -> BigInt,
        ip -> Nullable<Text>,
        method -> Text,
        path -> Text,
        outcome -> Text,
    }
}

diesel::table! {
    client_registrations (client_id) {
        client_id -> Text,
        registered_by -> Text,
        token_fingerprint -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    initial_access_tokens (id) {
        id -> Text,
        fingerprint -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        max_uses -> Nullable<BigInt>,
        uses -> BigInt,
        revoked_at -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
    }
}

diesel::table! {
    cache_version (id) {
        id -> Integer,
        version -> BigInt,
    }
}
