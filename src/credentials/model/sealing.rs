//! A credential's secrets, sealed field by field under the keyring's active key and bound to
//! their organization, credential and field (the associated data), so a sealed value copied to
//! another row or field does not open.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use diesel::prelude::*;

use super::{Credential, CredentialId};
use crate::crypto::{Keyring, Sealed};
use crate::ids::OrganizationId;
use crate::schema::credentials;

/// Associated data binding a sealed field to its organization, credential and field.
fn context(organization: OrganizationId, id: CredentialId, field: &str) -> String {
    format!("org/{organization}/credential/{id}/{field}")
}

/// A credential's secrets sealed for it, field by field, and the key that sealed them.
pub(super) struct SealedSecrets {
    pub(super) fields: serde_json::Map<String, serde_json::Value>,
    pub(super) key_id: String,
}

impl SealedSecrets {
    /// Seals `secrets` of credential `id` of `organization` under the active key.
    pub(super) fn seal(
        keyring: &Keyring,
        organization: OrganizationId,
        id: CredentialId,
        secrets: &BTreeMap<String, String>,
    ) -> anyhow::Result<SealedSecrets> {
        let fields = secrets
            .iter()
            .map(|(field, value)| {
                let sealed = keyring.seal(value.as_bytes(), &context(organization, id, field))?;
                Ok((
                    field.clone(),
                    serde_json::Value::String(BASE64.encode(sealed.bytes)),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(SealedSecrets {
            fields,
            key_id: keyring.active_id().to_string(),
        })
    }
}

impl Credential {
    /// Opens every secret field (for verification and use only; never for display).
    pub fn open_secrets(&self, keyring: &Keyring) -> anyhow::Result<BTreeMap<String, String>> {
        let mut opened = BTreeMap::new();
        for (field, value) in self.secrets.as_object().into_iter().flatten() {
            let bytes = BASE64.decode(value.as_str().unwrap_or_default())?;
            let sealed = Sealed {
                key_id: self.key_id.clone(),
                bytes,
            };
            let plain = keyring.open(&sealed, &context(self.organization_id, self.id, field))?;
            opened.insert(field.clone(), String::from_utf8(plain)?);
        }
        Ok(opened)
    }

    /// Re-seals up to `batch` credentials not yet under the active key; returns how many.
    pub fn reseal_batch(
        conn: &mut PgConnection,
        keyring: &Keyring,
        batch: i64,
    ) -> anyhow::Result<usize> {
        conn.transaction(|conn| {
            let rows: Vec<Credential> = credentials::table
                .filter(credentials::key_id.ne(keyring.active_id()))
                .select(Credential::as_select())
                .order(credentials::id)
                .limit(batch)
                .for_update()
                .skip_locked()
                .load(conn)?;
            for row in &rows {
                let secrets = row.open_secrets(keyring)?;
                let sealed = SealedSecrets::seal(keyring, row.organization_id, row.id, &secrets)?;
                diesel::update(credentials::table.find(row.id))
                    .set((
                        credentials::secrets.eq(serde_json::Value::Object(sealed.fields)),
                        credentials::key_id.eq(sealed.key_id),
                    ))
                    .execute(conn)?;
            }
            Ok(rows.len())
        })
    }
}
