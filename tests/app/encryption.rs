//! Encrypted backups (issue 17, SPEC §10): dumps sealed with age before they leave keyhold,
//! restored by keyhold with the kept or a pasted identity, and by Debian's `age` CLI and
//! `pg_restore` without keyhold; bad keys and damaged objects never touch the target.

use std::process::{Command, Stdio};

use diesel::prelude::*;
use reqwest::StatusCode;
use sha2::Digest;

use crate::support::{DataDb, World, scalar_text, texts, world};

fn execute(url: &str, sql: &str) {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

fn orders(db: &DataDb) -> String {
    db.scalar("SELECT count(*)::text AS value FROM app.orders")
}

/// A key pair made by Debian's `age-keygen` (not by keyhold): (identity file, recipient).
fn keygen() -> (String, String) {
    let output = Command::new("age-keygen")
        .output()
        .expect("age-keygen runs (bash scripts/test installs Debian's age)");
    let file = String::from_utf8(output.stdout).unwrap();
    let recipient = file
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .expect("age-keygen prints the public key")
        .to_string();
    (file, recipient)
}

/// The secret line of an identity file.
fn secret(identity: &str) -> String {
    identity
        .lines()
        .find(|line| line.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string()
}

/// Posts the encryption form; the response.
async fn set_encryption(world: &World, fields: &[(&str, &str)]) -> reqwest::Response {
    world
        .partner
        .post_from(&world.path(""), &world.path("/backup/encryption"), fields)
        .await
}

/// Asks for a restore of `backup` with these fields; the response.
async fn restore(world: &World, backup: i64, fields: &[(&str, &str)]) -> reqwest::Response {
    world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{backup}/restore")),
            fields,
        )
        .await
}

async fn one_backup(world: &World) -> i64 {
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    backup
}

#[actix_web::test]
async fn an_encrypted_backup_restores_in_keyhold_and_with_the_age_cli_alone() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;

    // Generate a key pair, kept by keyhold: the identity is shown once, never cached.
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/backup/encryption/generate"),
            &[("keep_identity", "on")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let page = response.text().await.unwrap();
    let identity = texts(&page, "#new-age-identity").join("");
    assert!(identity.contains("AGE-SECRET-KEY-1"), "{page}");
    let recipient = identity
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let project = world.partner.page(&world.path("")).await;
    assert!(!project.contains(&secret(&identity)), "never shown again");
    let stored = scalar_text(
        &world.app,
        "SELECT coalesce(identity, '') AS value FROM project_encryption",
    );
    assert!(
        !stored.is_empty() && !stored.contains(&secret(&identity)),
        "kept sealed"
    );

    let backup = one_backup(&world).await;
    let key = scalar_text(
        &world.app,
        &format!("SELECT object_key AS value FROM backups WHERE id = {backup}"),
    );
    assert!(key.ends_with(".dump.age"), "{key}");
    let object = std::fs::read(world.object_path(backup)).unwrap();
    assert!(
        object.starts_with(b"age-encryption.org/v1"),
        "an age v1 file"
    );
    assert!(
        !object.windows(5).any(|w| w == b"PGDMP"),
        "no plain dump in the bucket"
    );
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&object)),
        scalar_text(
            &world.app,
            &format!("SELECT sha256 AS value FROM backups WHERE id = {backup}")
        ),
        "the checksum is of the stored bytes"
    );
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT array_to_string(encrypted_to, ',') AS value FROM backups WHERE id = {backup}"
            )
        ),
        recipient
    );
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(tab.contains(">encrypted</span>"), "the Backups tab says so");

    // keyhold restores it in place with the identity it keeps.
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 40");
    let response = restore(&world, backup, &[("restore_name", "kept-key")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = world.restore_outcome("kept-key").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(orders(&world.data), "100");

    // Without keyhold: the bucket's object, Debian's age and pg_restore.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, &identity).unwrap();
    let fresh = DataDb::empty();
    let mut age = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key_file)
        .arg(world.object_path(backup))
        .stdout(Stdio::piped())
        .spawn()
        .expect("age runs (bash scripts/test installs Debian's age)");
    let restored = Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &fresh.url])
        .stdin(age.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(age.wait().unwrap().success(), "age decrypted it");
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(orders(&fresh), "100");

    let audit = scalar_text(
        &world.app,
        "SELECT string_agg(action, ',' ORDER BY id) AS value FROM audit_events
         WHERE action LIKE 'backup.encryption%'",
    );
    assert_eq!(audit, "backup.encryption_generate");
}

#[actix_web::test]
async fn wrong_keys_and_damaged_objects_are_refused_before_the_target_is_touched() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (identity, recipient) = keygen();
    let (other, _) = keygen();
    // Encryption with a recipient only: keyhold keeps no key.
    let response =
        set_encryption(&world, &[("encrypt", "on"), ("age_recipients", &recipient)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let backup = one_backup(&world).await;
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 30");

    // No key kept, none pasted: the restore says which key it needs.
    restore(&world, backup, &[("restore_name", "no-key")]).await;
    let outcome = world.restore_outcome("no-key").await;
    assert!(
        outcome.starts_with("Failed")
            && outcome.contains("keyhold keeps no key")
            && outcome.contains(&recipient[..9]),
        "{outcome}"
    );
    // The restore form asks for one.
    let form = world
        .partner
        .page(&world.path(&format!("/backups/{backup}/restore")))
        .await;
    assert!(form.contains("name=\"age_identity\""), "{form}");
    // Another key: refused at once (422), nothing started.
    let response = restore(
        &world,
        backup,
        &[("restore_name", "other-key"), ("age_identity", &other)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("this backup was not encrypted to that key")
    );
    assert_eq!(orders(&world.data), "30");
    // The right key, pasted for this restore: restored, and not stored.
    let response = restore(
        &world,
        backup,
        &[("restore_name", "pasted-key"), ("age_identity", &identity)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = world.restore_outcome("pasted-key").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(orders(&world.data), "100");
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT coalesce(identity, 'none') AS value FROM project_encryption"
        ),
        "none"
    );

    // A changed byte whose checksum was forged too: age's authentication refuses it.
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 30");
    let path = world.object_path(backup);
    let mut object = std::fs::read(&path).unwrap();
    let middle = object.len() / 2;
    object[middle] ^= 0x01;
    std::fs::write(&path, &object).unwrap();
    restore(
        &world,
        backup,
        &[
            ("restore_name", "tampered-sum"),
            ("age_identity", &identity),
        ],
    )
    .await;
    let outcome = world.restore_outcome("tampered-sum").await;
    assert!(outcome.contains("checksum mismatch"), "{outcome}");
    let forged = hex::encode(sha2::Sha256::digest(&object));
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backups SET sha256 = '{forged}' WHERE id = {backup}"
        ))
        .execute(conn)
    });
    restore(
        &world,
        backup,
        &[("restore_name", "tampered"), ("age_identity", &identity)],
    )
    .await;
    let outcome = world.restore_outcome("tampered").await;
    assert!(
        outcome.starts_with("Failed")
            && outcome.contains("does not decrypt")
            && outcome.contains("the target database was not changed"),
        "{outcome}"
    );
    // Cut short (checksum and size forged to match): refused as well.
    let cut = object[..object.len() - 200].to_vec();
    std::fs::write(&path, &cut).unwrap();
    let (forged, size) = (hex::encode(sha2::Sha256::digest(&cut)), cut.len());
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backups SET sha256 = '{forged}', size_bytes = {size} WHERE id = {backup}"
        ))
        .execute(conn)
    });
    restore(
        &world,
        backup,
        &[("restore_name", "truncated"), ("age_identity", &identity)],
    )
    .await;
    let outcome = world.restore_outcome("truncated").await;
    assert!(
        outcome.starts_with("Failed") && outcome.contains("does not decrypt"),
        "{outcome}"
    );
    assert_eq!(orders(&world.data), "30", "the target was never touched");
}

#[actix_web::test]
async fn the_encryption_form_names_bad_lines_and_turning_it_off_needs_a_confirmation() {
    let world = world().await;
    let (identity, recipient) = keygen();
    let (other, _) = keygen();

    let typed = format!("{recipient}\nage1-not-a-key");
    let response = set_encryption(&world, &[("encrypt", "on"), ("age_recipients", &typed)]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        texts(&page, "p.error")
            .iter()
            .any(|e| e.starts_with("Line 2: not an age X25519 public key")),
        "{page}"
    );
    assert!(page.contains("age1-not-a-key"), "what was typed is kept");

    let response = set_encryption(&world, &[("encrypt", "on"), ("age_recipients", "")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Add at least one age1… public key")
    );

    // An identity that matches no recipient is refused at save, and never echoed.
    let response = set_encryption(
        &world,
        &[
            ("encrypt", "on"),
            ("age_recipients", &recipient),
            ("age_identity", &other),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("This identity matches none of the recipients"));
    assert!(!page.contains(&secret(&other)), "a secret is never shown");
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT count(*)::text AS value FROM project_encryption"
        ),
        "0"
    );

    let response = set_encryption(
        &world,
        &[
            ("encrypt", "on"),
            ("age_recipients", &recipient),
            ("age_identity", &identity),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = world.partner.page(&world.path("")).await;
    assert!(page.contains("keyhold keeps the matching identity sealed"));
    assert!(!page.contains(&secret(&identity)));

    // Off needs the confirmation; then it is off and audited.
    let response = set_encryption(&world, &[("age_recipients", &recipient)]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Confirm that new backups will be stored unencrypted")
    );
    let response = set_encryption(
        &world,
        &[("age_recipients", &recipient), ("confirm_off", "on")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT enabled::text AS value FROM project_encryption"
        ),
        "false"
    );
    let audit = scalar_text(
        &world.app,
        "SELECT string_agg(action || ':' || array_to_string(fields, '+'), ',' ORDER BY id)
             AS value FROM audit_events WHERE action LIKE 'backup.encryption%'",
    );
    assert_eq!(
        audit,
        "backup.encryption_on:encrypt+age_recipients+age_identity,backup.encryption_off:encrypt+age_recipients"
    );
    let audit_values = scalar_text(
        &world.app,
        "SELECT coalesce(string_agg(t::text, ','), '') AS value FROM audit_events t",
    );
    assert!(
        !audit_values.contains(&secret(&identity)),
        "no secret in the audit log"
    );

    // A backup after turning it off is stored plainly, and says so.
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let backup = one_backup(&world).await;
    assert!(
        std::fs::read(world.object_path(backup))
            .unwrap()
            .starts_with(b"PGDMP")
    );
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(tab.contains("unencrypted"));
}
