//! Password hashing with argon2id (m=19456 KiB, t=2, p=1), run on the blocking pool and limited
//! to `KEYHOLD_HASH_CONCURRENCY` at a time so a burst of sign-ins cannot starve page requests.

use std::sync::{Arc, LazyLock};

use actix_web::web;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::crypto::Secret;

/// Shortest password accepted for a new account.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted: argon2 hashes any length, but nobody needs more.
pub const MAX_LENGTH: usize = 256;

/// A hash of a password nobody has, verified when the email is unknown so that both failures
/// take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_now("not a password of anyone").expect("argon2 hashes with fixed parameters")
});

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hasher is shutting down.
    #[error("the password hasher is closed")]
    Closed,
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// Hashes and verifies passwords, a bounded number at once.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> PasswordHasher {
        // Computed now, so the first unknown email is not slower than the rest.
        LazyLock::force(&DUMMY_HASH);
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// The PHC string of a new hash of `password`.
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        let password = password.clone();
        self.bounded(move || hash_now(password.expose()).map_err(HashError::Failed))
            .await
    }

    /// Whether `password` matches `hash`; with no hash (unknown person) it spends the same time
    /// and answers no.
    pub async fn verify(&self, password: &Secret, hash: Option<String>) -> Result<bool, HashError> {
        let password = password.clone();
        self.bounded(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = argon2()
                .verify_password(password.expose().as_bytes(), hash.as_str())
                .is_ok();
            Ok(known && matches)
        })
        .await
    }

    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        web::block(work)
            .await
            .map_err(|error| HashError::Failed(anyhow::anyhow!("blocking task failed: {error}")))?
    }
}

/// Checks a new password against the rules; the message is shown next to the field.
pub fn check_new(password: &Secret) -> Result<(), String> {
    let length = password.expose().chars().count();
    if length < MIN_LENGTH {
        Err(format!("Use at least {MIN_LENGTH} characters."))
    } else if length > MAX_LENGTH {
        Err(format!("Use at most {MAX_LENGTH} characters."))
    } else {
        Ok(())
    }
}

/// Hashes outside any request (command line); same parameters.
pub fn hash_blocking(password: &Secret) -> anyhow::Result<String> {
    hash_now(password.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let hash = hash_now("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }

    #[actix_web::test]
    async fn verify_accepts_the_password_and_nothing_else() {
        let hasher = PasswordHasher::new(1);
        let secret = Secret::new("correct horse battery");
        let hash = hasher.hash(&secret).await.unwrap();
        assert!(hasher.verify(&secret, Some(hash.clone())).await.unwrap());
        assert!(
            !hasher
                .verify(&Secret::new("wrong"), Some(hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify(&secret, None).await.unwrap());
    }
}
