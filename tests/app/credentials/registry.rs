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

#[actix_web::test]
async fn every_cloud_provider_can_be_added_and_is_checked_against_its_api() {
    // The other kinds have one provider each, added by their own tests (verification.rs).
    let others: Vec<_> = provider::PROVIDERS
        .iter()
        .filter(|provider| provider.kind != Kind::Cloud)
        .map(|provider| (provider.kind.key(), provider.key))
        .collect();
    assert_eq!(
        others,
        [
            ("backup", "s3"),
            ("billing", "prometheus"),
            ("showback", "prometheus"),
            ("ai", "openai")
        ],
        "a provider of another kind needs its own test"
    );
    let setup = setup().await;
    for (provider, fields) in every_cloud_form(&setup.fake, &|_| GOOD.to_string()) {
        let name = format!("{provider}-ok");
        let response = add_cloud(&setup.partner, setup.blue, provider, &name, &fields).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{provider}: {:?} {:?}",
            texts(&body, ".verify-box"),
            texts(&body, "p.error")
        );

        // The same values with a wrong secret are refused (except where only the structure
        // can be checked): every secret field but the ids of keys is changed.
        let registered = Kind::Cloud.spec().providers().find(|p| p.key == provider);
        let registered = registered.unwrap();
        let wrong: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| {
                let secret_field = registered
                    .secret_fields()
                    .any(|field| field.key == k && !k.ends_with("_id"));
                (
                    k.clone(),
                    if secret_field {
                        "wrong-value-123".to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        if !["gcp", "zadara", "openshift"].contains(&provider) {
            let response = add_cloud(
                &setup.partner,
                setup.blue,
                provider,
                &format!("{provider}-bad"),
                &wrong,
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{provider} with a wrong secret"
            );
            let message = texts(&response.text().await.unwrap(), ".verify-box").join("");
            assert!(message.starts_with("Invalid"), "{provider}: {message}");
        }
    }
    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert!(
        page.contains("keyhold-demo"),
        "GCP project id derived from the key"
    );
    // A field required only when no project is imported says so, not "(optional)".
    let form = setup
        .partner
        .page("/credentials/cloud/new?provider=gcp")
        .await;
    let labels = texts(&form, "label[for=folder_id], label[for=billing_account_id]");
    assert_eq!(labels, ["Folder ID", "Billing account ID"], "{labels:?}");
    assert!(form.contains("Required unless importing a project."));
    // Both follow the checkbox (hidden and disabled by app.js while it is ticked).
    assert_eq!(
        texts(
            &form,
            "[data-unless=import_project] #folder_id, [data-unless=import_project] #billing_account_id"
        )
        .len(),
        2,
        "{form}"
    );
    let page = setup
        .partner
        .page("/credentials/cloud?provider=openshift")
        .await;
    assert!(
        page.contains(&format!("{}/k8s", setup.fake)),
        "API server derived from the kubeconfig"
    );
}
