//! Diesel table definitions, matching `migrations/resource-server/`.

diesel::table! {
    notes (id) {
        id -> Uuid,
        owner -> Text,
        title -> Text,
        body -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}
