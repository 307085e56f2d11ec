//! A project's bucket: the S3 settings of its credential, and enabling backup's preparation
//! (created if missing; write, read and delete proved with a probe object). Its names are
//! `storage::bucket_name`.

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
