//! The registry is the one source of kinds and providers: every provider it lists is tested,
//! and a stored kind is one of its kinds.

use super::*;

#[actix_web::test]
async fn a_row_of_an_unknown_kind_is_an_error_not_a_cloud_credential() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Odd key").await;
    // Only behind keyhold's back: a CHECK constraint keeps every stored kind known.
    setup.app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("ALTER TABLE credentials DROP CONSTRAINT credentials_kind_known")
            .execute(conn)?;
        diesel::sql_query(format!(
            "UPDATE credentials SET kind = 'gpu' WHERE id = {id}"
        ))
        .execute(conn)
    });
    let read = setup.app.query(move |conn| {
        Ok(keyhold::credentials::model::Credential::find_any(
            conn,
            keyhold::credentials::model::CredentialId(id),
        ))
    });
    let error = read.expect_err("an unknown kind does not read as a credential");
    let error = format!("{error:?}");
    assert!(
        error.contains("unknown credential kind") && error.contains("gpu"),
        "{error}"
    );
    let cloud = setup.partner.page("/credentials/cloud").await;
    assert!(
        texts(&cloud, "tbody#rows td.name summary").is_empty(),
        "not shown as a cloud credential"
    );
}
