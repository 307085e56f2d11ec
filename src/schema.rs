// @generated automatically by Diesel CLI.

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        partner_id -> Int8,
        name -> Text,
        prefix -> Text,
        token_hash -> Text,
        scopes -> Array<Nullable<Text>>,
        allowed_ips -> Array<Nullable<Text>>,
        expires_on -> Date,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        last_used_ip -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
        window_started_at -> Timestamptz,
        window_requests -> Int4,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Int8,
        at -> Timestamptz,
        actor_id -> Nullable<Int8>,
        actor_label -> Text,
        partner_id -> Nullable<Int8>,
        organization_id -> Nullable<Int8>,
        action -> Text,
        object_kind -> Text,
        object_id -> Nullable<Int8>,
        object_label -> Text,
        fields -> Array<Nullable<Text>>,
        client_ip -> Nullable<Text>,
    }
}

diesel::table! {
    backup_policies (id) {
        drill -> Text,
        id -> Int8,
        project_id -> Int8,
        name -> Text,
        cron -> Text,
        timezone -> Text,
        retention_secs -> Int8,
        namespaces -> Array<Nullable<Text>>,
        next_run_at -> Timestamptz,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        heartbeat_url -> Nullable<Text>,
    }
}

diesel::table! {
    backups (id) {
        id -> Int8,
        project_id -> Int8,
        policy_id -> Nullable<Int8>,
        policy_name -> Text,
        name -> Text,
        scheduled_for -> Timestamptz,
        phase -> Text,
        reason -> Nullable<Text>,
        credential_id -> Nullable<Int8>,
        bucket -> Nullable<Text>,
        object_key -> Nullable<Text>,
        namespaces -> Array<Nullable<Text>>,
        size_bytes -> Nullable<Int8>,
        sha256 -> Nullable<Text>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        upload_key -> Nullable<Text>,
        upload_id -> Nullable<Text>,
        preflight -> Nullable<Text>,
        encrypted_to -> Nullable<Array<Nullable<Text>>>,
        progress_bytes -> Nullable<Int8>,
    }
}

diesel::table! {
    credentials (id) {
        id -> Int8,
        organization_id -> Int8,
        kind -> Text,
        provider -> Text,
        name -> Text,
        public -> Jsonb,
        secrets -> Jsonb,
        key_id -> Text,
        search_text -> Text,
        is_default -> Bool,
        is_locked -> Bool,
        expires_on -> Nullable<Date>,
        verified_at -> Nullable<Timestamptz>,
        verify_ok -> Nullable<Bool>,
        verify_message -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int8>,
        verify_state -> Nullable<Text>,
    }
}

diesel::table! {
    backup_tables (backup_id, schema_name, table_name) {
        backup_id -> Int8,
        schema_name -> Text,
        table_name -> Text,
        row_count -> Int8,
    }
}

diesel::table! {
    drills (id) {
        id -> Int8,
        project_id -> Int8,
        backup_id -> Nullable<Int8>,
        backup_name -> Text,
        phase -> Text,
        reason -> Nullable<Text>,
        scratch_database -> Nullable<Text>,
        scratch_dropped_at -> Nullable<Timestamptz>,
        tables_compared -> Int4,
        rows_compared -> Int8,
        mismatches -> Array<Nullable<Text>>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
    }
}

diesel::table! {
    login_throttles (key) {
        key -> Text,
        failures -> Int4,
        window_started_at -> Timestamptz,
        blocked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    organizations (id) {
        id -> Int8,
        partner_id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        mfa_required -> Bool,
    }
}

diesel::table! {
    partners (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
        mfa_required -> Bool,
    }
}

diesel::table! {
    project_data_sources (project_id) {
        project_id -> Int8,
        identity -> Text,
        schemas -> Array<Text>,
        first_seen_at -> Timestamptz,
        checked_at -> Timestamptz,
    }
}

diesel::table! {
    project_encryption (project_id) {
        project_id -> Int8,
        enabled -> Bool,
        recipients -> Array<Nullable<Text>>,
        identity -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int8>,
    }
}

diesel::table! {
    projects (id) {
        id -> Int8,
        organization_id -> Int8,
        name -> Text,
        cloud_credential_id -> Nullable<Int8>,
        ai_credential_id -> Nullable<Int8>,
        database_url -> Text,
        backup_enabled -> Bool,
        backup_credential_id -> Nullable<Int8>,
        bucket -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int8>,
    }
}

diesel::table! {
    restores (id) {
        id -> Int8,
        project_id -> Int8,
        backup_id -> Nullable<Int8>,
        backup_name -> Text,
        name -> Text,
        namespaces -> Array<Nullable<Text>>,
        target_url -> Nullable<Text>,
        phase -> Text,
        warnings -> Nullable<Text>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        parallel -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Nullable<Int8>,
        state -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        partner_id -> Int8,
        organization_id -> Nullable<Int8>,
        email -> Text,
        display_name -> Text,
        role -> Text,
        password_hash -> Text,
        disabled -> Bool,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        totp_secret -> Nullable<Text>,
        totp_pending -> Nullable<Text>,
        totp_enabled_at -> Nullable<Timestamptz>,
        totp_last_step -> Nullable<Int8>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Int8,
        user_id -> Int8,
        code_hash -> Text,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        credential_id -> Text,
        credential -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    credential_uses (credential_id) {
        credential_id -> Int8,
        used_at -> Timestamptz,
        used_for -> Text,
    }
}

diesel::table! {
    notification_channels (id) {
        id -> Int8,
        organization_id -> Int8,
        name -> Text,
        kind -> Text,
        url -> Nullable<Text>,
        url_origin -> Nullable<Text>,
        secret -> Nullable<Text>,
        smtp_host -> Nullable<Text>,
        smtp_port -> Nullable<Int4>,
        smtp_tls -> Nullable<Text>,
        smtp_username -> Nullable<Text>,
        smtp_password -> Nullable<Text>,
        email_from -> Nullable<Text>,
        email_to -> Nullable<Text>,
        events -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        created_by -> Nullable<Int8>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int8>,
    }
}

diesel::table! {
    notification_deliveries (id) {
        id -> Int8,
        delivery_key -> Text,
        event_id -> Int8,
        channel_id -> Int8,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notification_events (id) {
        id -> Int8,
        organization_id -> Int8,
        kind -> Text,
        dedup_key -> Nullable<Text>,
        message -> Text,
        body -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_tokens -> partners (partner_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(audit_events -> organizations (organization_id));
diesel::joinable!(audit_events -> partners (partner_id));
diesel::joinable!(audit_events -> users (actor_id));
diesel::joinable!(backup_tables -> backups (backup_id));
diesel::joinable!(drills -> backups (backup_id));
diesel::joinable!(drills -> projects (project_id));
diesel::joinable!(drills -> users (created_by));
diesel::joinable!(backup_policies -> projects (project_id));
diesel::joinable!(backup_policies -> users (created_by));
diesel::joinable!(backups -> backup_policies (policy_id));
diesel::joinable!(backups -> projects (project_id));
diesel::joinable!(backups -> credentials (credential_id));
diesel::joinable!(credential_uses -> credentials (credential_id));
diesel::joinable!(credentials -> organizations (organization_id));
diesel::joinable!(notification_channels -> organizations (organization_id));
diesel::joinable!(notification_deliveries -> notification_channels (channel_id));
diesel::joinable!(notification_deliveries -> notification_events (event_id));
diesel::joinable!(notification_events -> organizations (organization_id));
diesel::joinable!(organizations -> partners (partner_id));
diesel::joinable!(project_data_sources -> projects (project_id));
diesel::joinable!(projects -> organizations (organization_id));
diesel::joinable!(project_encryption -> projects (project_id));
diesel::joinable!(project_encryption -> users (updated_by));
diesel::joinable!(restores -> backups (backup_id));
diesel::joinable!(restores -> projects (project_id));
diesel::joinable!(restores -> users (created_by));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(users -> partners (partner_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    audit_events,
    credential_uses,
    notification_channels,
    notification_deliveries,
    notification_events,
    passkeys,
    recovery_codes,
    backup_policies,
    backup_tables,
    backups,
    credentials,
    drills,
    login_throttles,
    organizations,
    partners,
    project_data_sources,
    project_encryption,
    projects,
    restores,
    sessions,
    users,
);
