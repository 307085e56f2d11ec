// @generated automatically by Diesel CLI.

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
    }
}

diesel::table! {
    partners (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
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
    }
}

diesel::joinable!(audit_events -> organizations (organization_id));
diesel::joinable!(audit_events -> partners (partner_id));
diesel::joinable!(audit_events -> users (actor_id));
diesel::joinable!(credentials -> organizations (organization_id));
diesel::joinable!(organizations -> partners (partner_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(users -> partners (partner_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    credentials,
    login_throttles,
    organizations,
    partners,
    sessions,
    users,
);
