//! The id of every kind of row, one newtype each (`id!`), and `stored_as_text!`, how a state
//! enum is stored as its word. Core: imports nothing of the app, so every layer may name them.
//! Each area's model re-exports its own ids (`projects::model::ProjectId`, …).

macro_rules! id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            diesel_derive_newtype::DieselNewType,
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
        )]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl $name {
            /// The id a URL path names; anything else is "not found".
            pub fn from_path(text: &str) -> Result<$name, $crate::error::AppError> {
                text.parse().map($name).map_err(|_| $crate::error::AppError::NotFound)
            }
        }
    )*};
}

id!(
    /// Id of a partner account.
    PartnerId,
    /// Id of an organization.
    OrganizationId,
    /// Id of a person who can sign in.
    UserId,
    /// Id of an API token.
    TokenId,
    /// Id of a credential.
    CredentialId,
    /// Id of a project.
    ProjectId,
    /// Id of a backup policy.
    PolicyId,
    /// Id of a backup.
    BackupId,
    /// Id of a restore.
    RestoreId,
    /// Id of a restore drill.
    DrillId,
    /// Id of a notification channel.
    ChannelId,
);

/// Stores an enum as its word (`key()`), read back through `ALL`: the `ToSql`/`FromSql` of
/// every state kept as text (`Role`, `Phase`, `VerifyState`). The type derives
/// `AsExpression`/`FromSqlRow` with `sql_type = Text`.
#[macro_export]
macro_rules! stored_as_text {
    ($type:ty, $what:literal) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $type {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                std::io::Write::write_all(out, self.key().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $type {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(bytes)?;
                <$type>::ALL
                    .into_iter()
                    .find(|value| value.key() == text)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), text).into())
            }
        }
    };
}
