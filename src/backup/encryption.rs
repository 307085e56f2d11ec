//! Encrypted backups (SPEC §10): a project's dumps are sealed with age (X25519 recipients)
//! before they leave keyhold, in files the `age` CLI decrypts. A project keeps its recipients
//! (public keys) and, optionally, one identity (the secret key) sealed with the keyring like
//! any secret, so restores and drills can decrypt without asking.
//!
//! Encryption is streamed (`encrypt`: no whole-dump buffer); decryption reads a downloaded,
//! checksum-checked file into a second private file (`decrypt_file`), so a wrong key, a
//! truncated or a tampered object is refused by age's authentication before `pg_restore`
//! touches the target.

use std::io::{BufReader, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::crypto::Keyring;
use crate::ids::{OrganizationId, ProjectId, UserId};
use crate::schema::project_encryption;

/// What the encryption settings of a project hold.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = project_encryption)]
pub struct Encryption {
    pub project_id: ProjectId,
    pub enabled: bool,
    pub recipients: Vec<Option<String>>,
    /// The identity, sealed (`None`: keyhold keeps no key and restores need one pasted).
    pub identity: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<UserId>,
}

/// Associated data of a project's sealed identity.
fn context(organization: OrganizationId, project: ProjectId) -> String {
    format!("org/{organization}/project/{project}/age_identity")
}

impl Encryption {
    /// The project's settings; `None` when encryption was never set up.
    pub fn find(conn: &mut PgConnection, project: ProjectId) -> QueryResult<Option<Encryption>> {
        project_encryption::table
            .find(project)
            .select(Encryption::as_select())
            .first(conn)
            .optional()
    }

    pub fn recipients(&self) -> Vec<String> {
        self.recipients.iter().flatten().cloned().collect()
    }

    /// The kept identity, opened.
    pub fn open_identity(
        &self,
        keyring: &Keyring,
        organization: OrganizationId,
    ) -> anyhow::Result<Option<String>> {
        self.identity
            .as_ref()
            .map(|sealed| keyring.open_text(sealed, &context(organization, self.project_id)))
            .transpose()
    }

    /// Saves the settings: `identity` `None` keeps the sealed one, `Some(None)` forgets it.
    #[allow(clippy::too_many_arguments)]
    pub fn save(
        conn: &mut PgConnection,
        keyring: &Keyring,
        organization: OrganizationId,
        project: ProjectId,
        enabled: bool,
        recipients: &[String],
        identity: Option<Option<&str>>,
        by: UserId,
    ) -> anyhow::Result<()> {
        let sealed = match identity {
            Some(Some(identity)) => Some(Some(
                keyring.seal_text(identity, &context(organization, project))?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        let recipients: Vec<Option<String>> = recipients.iter().cloned().map(Some).collect();
        let now = Utc::now();
        diesel::insert_into(project_encryption::table)
            .values((
                project_encryption::project_id.eq(project),
                project_encryption::enabled.eq(enabled),
                project_encryption::recipients.eq(&recipients),
                project_encryption::identity.eq(sealed.clone().flatten()),
                project_encryption::updated_at.eq(now),
                project_encryption::updated_by.eq(Some(by)),
            ))
            .on_conflict(project_encryption::project_id)
            .do_update()
            .set((
                project_encryption::enabled.eq(enabled),
                project_encryption::recipients.eq(&recipients),
                project_encryption::updated_at.eq(now),
                project_encryption::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        if let Some(sealed) = sealed {
            diesel::update(project_encryption::table.find(project))
                .set(project_encryption::identity.eq(sealed))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Re-seals up to `batch` identities not under the active key; returns how many.
    pub fn reseal_batch(
        conn: &mut PgConnection,
        keyring: &Keyring,
        batch: i64,
    ) -> anyhow::Result<usize> {
        use crate::schema::projects;
        conn.transaction(|conn| {
            let prefix = format!("{}:%", keyring.active_id());
            let rows: Vec<(ProjectId, OrganizationId, String)> = project_encryption::table
                .inner_join(projects::table)
                .filter(project_encryption::identity.not_like(prefix))
                .select((
                    project_encryption::project_id,
                    projects::organization_id,
                    project_encryption::identity.assume_not_null(),
                ))
                .order(project_encryption::project_id)
                .limit(batch)
                .for_update()
                .skip_locked()
                .load(conn)?;
            for (project, organization, sealed) in &rows {
                let context = context(*organization, *project);
                let identity = keyring.open_text(sealed, &context)?;
                diesel::update(project_encryption::table.find(project))
                    .set(project_encryption::identity.eq(keyring.seal_text(&identity, &context)?))
                    .execute(conn)?;
            }
            Ok(rows.len())
        })
    }
}

/// Parses recipients, one `age1…` X25519 public key per line (blank lines and `#` comments
/// skipped, duplicates dropped); the error names the first bad line.
pub fn parse_recipients(text: &str) -> Result<Vec<String>, String> {
    let mut recipients: Vec<String> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let recipient = age::x25519::Recipient::from_str(line).map_err(|_| {
            format!(
                "Line {}: not an age X25519 public key (one age1… key per line).",
                number + 1
            )
        })?;
        let recipient = recipient.to_string();
        if !recipients.contains(&recipient) {
            recipients.push(recipient);
        }
    }
    Ok(recipients)
}

/// Parses an identity (`AGE-SECRET-KEY-1…`, `#` comment lines allowed, as `age-keygen`
/// writes them); its public key.
pub fn parse_identity(text: &str) -> Result<(String, String), String> {
    let key = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or_default();
    let identity = age::x25519::Identity::from_str(key).map_err(|_| {
        "Not an age identity: paste the AGE-SECRET-KEY-1… line of the key file.".to_string()
    })?;
    Ok((key.to_string(), identity.to_public().to_string()))
}

/// A new key pair: (identity, recipient), the identity as `age-keygen` writes a key file.
pub fn generate() -> (String, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    (
        format!(
            "# created: {}\n# public key: {recipient}\n{}\n",
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            secret.expose_secret()
        ),
        recipient,
    )
}

/// A recipient shortened for tables: `age1abcd…wxyz`.
pub fn short(recipient: &str) -> String {
    if recipient.len() <= 16 {
        return recipient.to_string();
    }
    format!("{}…{}", &recipient[..9], &recipient[recipient.len() - 6..])
}

/// Copies `input` into `output`, encrypted to `recipients` (an age v1 file), streaming.
pub async fn encrypt(
    recipients: &[String],
    input: impl AsyncRead + Unpin,
    output: impl AsyncWrite + Unpin,
) -> Result<(), String> {
    use futures_util::AsyncWriteExt;
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| age::x25519::Recipient::from_str(r))
        .collect::<Result<_, _>>()
        .map_err(|_| "a recipient of this project is not an age public key".to_string())?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|error| format!("could not encrypt: {error}"))?;
    let mut sealed = encryptor
        .wrap_async_output(output.compat_write())
        .await
        .map_err(|error| format!("could not encrypt: {error}"))?;
    futures_util::io::copy(input.compat(), &mut sealed)
        .await
        .map_err(|error| format!("could not encrypt the dump: {error}"))?;
    sealed
        .close()
        .await
        .map_err(|error| format!("could not encrypt the dump: {error}"))
}

/// Why a file could not be decrypted.
#[derive(Debug, PartialEq, Eq)]
pub enum DecryptFailure {
    /// None of the identities is one the file was encrypted to.
    WrongKey,
    /// The file is not an age file, or it was cut short or changed.
    Damaged(String),
    /// Reading or writing the files failed.
    Io(String),
}

impl std::fmt::Display for DecryptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecryptFailure::WrongKey => write!(f, "this backup was not encrypted to that key"),
            DecryptFailure::Damaged(reason) => write!(
                f,
                "the encrypted backup does not decrypt (cut short or changed): {reason}"
            ),
            DecryptFailure::Io(reason) => write!(f, "could not decrypt the backup: {reason}"),
        }
    }
}

/// Decrypts the age file `input` with `identity` into `output`, wholly (age authenticates
/// every chunk; a file cut short fails at its end). Blocking: call off async threads.
pub fn decrypt_file(
    input: &std::path::Path,
    output: &std::path::Path,
    identity: &str,
) -> Result<(), DecryptFailure> {
    let (key, _) = parse_identity(identity).map_err(|_| DecryptFailure::WrongKey)?;
    let identity = age::x25519::Identity::from_str(&key).map_err(|_| DecryptFailure::WrongKey)?;
    let file = std::fs::File::open(input).map_err(|e| DecryptFailure::Io(e.to_string()))?;
    let decryptor = age::Decryptor::new(BufReader::new(file))
        .map_err(|error| DecryptFailure::Damaged(error.to_string()))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|error| match error {
            age::DecryptError::NoMatchingKeys => DecryptFailure::WrongKey,
            other => DecryptFailure::Damaged(other.to_string()),
        })?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(output)
        .map_err(|e| DecryptFailure::Io(e.to_string()))?;
    std::io::copy(&mut reader, &mut out).map_err(|error| {
        if error.kind() == std::io::ErrorKind::InvalidData
            || error.kind() == std::io::ErrorKind::UnexpectedEof
        {
            DecryptFailure::Damaged(error.to_string())
        } else {
            DecryptFailure::Io(error.to_string())
        }
    })?;
    out.flush().map_err(|e| DecryptFailure::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_checked_line_by_line() {
        let (_, one) = generate();
        let (_, two) = generate();
        let text = format!("# team\n{one}\n\n  {two}  \n{one}\n");
        assert_eq!(parse_recipients(&text).unwrap(), vec![one.clone(), two]);
        let bad = format!("{one}\nage1notakey\n");
        assert_eq!(
            parse_recipients(&bad).unwrap_err(),
            "Line 2: not an age X25519 public key (one age1… key per line)."
        );
        assert!(parse_recipients("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn a_generated_identity_matches_its_recipient_and_reads_like_a_key_file() {
        let (file, recipient) = generate();
        assert!(file.contains(&format!("# public key: {recipient}")));
        let (key, public) = parse_identity(&file).unwrap();
        assert!(key.starts_with("AGE-SECRET-KEY-1"));
        assert_eq!(public, recipient);
        assert!(parse_identity("AGE-SECRET-KEY-1NOPE").is_err());
        assert_eq!(short(&recipient).chars().count(), 16);
    }

    #[tokio::test]
    async fn what_is_encrypted_decrypts_with_its_key_only_and_tampering_is_refused() {
        let (identity, recipient) = generate();
        let (other, _) = generate();
        let plain: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let mut sealed = Vec::new();
        encrypt(&[recipient], &plain[..], &mut sealed)
            .await
            .unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("x.age"), dir.path().join("x"));
        std::fs::write(&input, &sealed).unwrap();
        std::fs::write(&output, b"").unwrap();
        decrypt_file(&input, &output, &identity).unwrap();
        assert_eq!(std::fs::read(&output).unwrap(), plain);
        assert_eq!(
            decrypt_file(&input, &output, &other),
            Err(DecryptFailure::WrongKey)
        );
        let mut tampered = sealed.clone();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 1;
        std::fs::write(&input, &tampered).unwrap();
        assert!(matches!(
            decrypt_file(&input, &output, &identity),
            Err(DecryptFailure::Damaged(_))
        ));
        std::fs::write(&input, &sealed[..sealed.len() - 100]).unwrap();
        assert!(matches!(
            decrypt_file(&input, &output, &identity),
            Err(DecryptFailure::Damaged(_))
        ));
    }
}
