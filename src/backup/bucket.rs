//! A project's bucket: the S3 settings of its credential, the default and valid names, and
//! enabling backup's preparation (created if missing; write, read and delete proved with a
//! probe object).

use crate::credentials::model::Credential;
use crate::crypto::{Keyring, random_token};
use crate::outbound::Outbound;
use crate::storage::{Addressing, Failure, S3Settings, Storage};

/// The S3 settings of a backup credential, opened for use.
pub fn s3_settings(credential: &Credential, keyring: &Keyring) -> Result<S3Settings, String> {
    let values = credential.all_values(keyring).map_err(|_| {
        "the backup credential's secret cannot be opened with the configured keys".to_string()
    })?;
    Ok(S3Settings {
        endpoint: values.get("endpoint").to_string(),
        region: values.get("region").to_string(),
        access_key: values.get("access_key_id").to_string(),
        secret_key: values.get("secret_access_key").to_string(),
        addressing: Addressing::of(values.get("addressing"), values.get("endpoint")),
    })
}

/// `what` denied (with S3's answer) when S3 refused this key's rights, else the failure.
pub(crate) fn denied_or(failure: &Failure, what: &str) -> String {
    if failure.denied() {
        format!("{what} ({})", failure.answer())
    } else {
        failure.to_string()
    }
}

/// The default bucket of a project: `keyhold-<organization>-<project>`, valid for S3.
pub fn default_bucket(organization: &str, project: &str) -> String {
    let slug = |text: &str| {
        text.to_lowercase()
            .chars()
            .map(|c| match latin_letter(c) {
                Some(plain) => plain,
                None if c.is_ascii_alphanumeric() => c.to_string(),
                None => "-".to_string(),
            })
            .collect::<String>()
            .split('-')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    let mut name = format!("keyhold-{}-{}", slug(organization), slug(project));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// A lower-case Latin letter with a diacritic as plain letters (`ü` → `ue`, `é` → `e`), so
/// `Grün Örg` makes `gruen-oerg`, not `gr-n-rg`.
fn latin_letter(c: char) -> Option<String> {
    let plain = match c {
        'ä' | 'æ' => "ae",
        'ö' | 'ø' | 'œ' => "oe",
        'ü' => "ue",
        'ß' => "ss",
        'à' | 'á' | 'â' | 'ã' | 'å' | 'ā' | 'ą' | 'ă' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ť' | 'ţ' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => return None,
    };
    Some(plain.to_string())
}

/// S3 bucket naming rules: 3–63 lower-case letters, digits, `-` and `.`, starting and ending
/// with a letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err("Use 3 to 63 lower-case letters, digits, - and ., starting and ending with a letter or digit.".into())
    }
}

/// Creates the bucket if needed, then proves write, read and delete with a probe object.
pub async fn prepare_bucket(
    outbound: &Outbound,
    settings: &S3Settings,
    name: &str,
) -> Result<String, String> {
    let storage = Storage::open(outbound, settings, name).await?;
    // Without the right to create buckets the bucket may still exist: the probe decides.
    let (created, create_refused) = match storage.create_bucket(&settings.region).await {
        Ok(created) => (created, None),
        Err(failure) if failure.status == Some(409) => (false, None),
        Err(failure) if failure.denied() => (false, Some(failure)),
        Err(failure) => return Err(failure.to_string()),
    };
    let key = format!(".keyhold-probe/{}", random_token());
    let content = b"keyhold write probe";
    if let Err(failure) = storage
        .put(
            &key,
            content,
            &format!("writing a probe object to bucket {name}"),
        )
        .await
    {
        return Err(match create_refused {
            Some(refused) if failure.code == "NoSuchBucket" || failure.status == Some(404) => {
                format!(
                    "creating bucket {name} is denied ({}): create the bucket {name} first, or \
                     use a key that may create buckets",
                    refused.answer()
                )
            }
            _ => denied_or(&failure, &format!("write denied on bucket {name}")),
        });
    }
    match storage
        .get(
            &key,
            &format!("reading the probe object from bucket {name}"),
        )
        .await
    {
        Ok(read) if read == content => {}
        Ok(_) => {
            return Err(format!(
                "read denied on bucket {name}: the probe object came back different"
            ));
        }
        Err(failure) => {
            return Err(denied_or(
                &failure,
                &format!("read denied on bucket {name}"),
            ));
        }
    }
    if let Err(failure) = storage
        .delete(
            &key,
            &format!("deleting the probe object from bucket {name}"),
        )
        .await
    {
        return Err(denied_or(
            &failure,
            &format!("delete denied on bucket {name}: retention needs it"),
        ));
    }
    Ok(if created {
        format!("created bucket {name}; write, read and delete work")
    } else {
        format!("bucket {name} is ready; write, read and delete work")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_are_valid_s3_names() {
        let name = default_bucket("Blue Org (EU)", "Shop-Prod");
        assert_eq!(name, "keyhold-blue-org-eu-shop-prod");
        assert!(check_bucket_name(&name).is_ok());
        assert!(check_bucket_name(&default_bucket(&"x".repeat(80), "p")).is_ok());
        assert!(check_bucket_name("Upper").is_err());
        assert!(check_bucket_name("-dash").is_err());
    }

    #[test]
    fn letters_with_diacritics_are_spelled_plainly_in_default_buckets() {
        assert_eq!(
            default_bucket("Grün Örg", "Café-Straße"),
            "keyhold-gruen-oerg-cafe-strasse"
        );
        assert_eq!(default_bucket("Łódź Śląsk", "x1"), "keyhold-lodz-slask-x1");
    }
}
