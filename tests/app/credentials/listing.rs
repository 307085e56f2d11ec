//! The tables: search, sort, paging, totals, the organization filter and a row's details.

use super::*;

#[actix_web::test]
async fn search_sort_paging_and_the_organization_filter_work_with_and_without_htmx() {
    let setup = setup().await;
    seed_ai(&setup.app, setup.blue, "blue", 55);
    seed_ai(&setup.app, setup.green, "green", 5);
    let partner = &setup.partner;

    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(texts(&page, "tbody#rows tr").len(), 50, "50 a page");
    assert!(page.contains("60 credentials"));
    let second = partner.page("/credentials/ai?page=2").await;
    assert_eq!(texts(&second, "tbody#rows tr").len(), 10);

    let sorted = partner.page("/credentials/ai?sort=name&dir=desc").await;
    let names = texts(&sorted, "tbody#rows td.name summary");
    assert_eq!(names.first().map(String::as_str), Some("green-key-04"));
    let by_org = partner
        .page("/credentials/ai?sort=organization&dir=asc")
        .await;
    assert!(texts(&by_org, "tbody#rows td.name summary")[0].starts_with("blue"));

    let filtered = partner
        .page(&format!("/credentials/ai?org={}", setup.green))
        .await;
    assert_eq!(texts(&filtered, "tbody#rows tr").len(), 5);

    let search = partner.get_htmx("/credentials/ai?q=KEY-0").await;
    assert_eq!(search.status(), StatusCode::OK);
    let fragment = search.text().await.unwrap();
    assert!(
        !fragment.contains("<html") && !fragment.contains("<nav class=\"tabs\""),
        "only the results"
    );
    assert_eq!(
        texts(&fragment, "tbody#rows tr").len(),
        15,
        "blue-key-00..09 and green-key-00..04"
    );

    for hostile in ["'; DROP TABLE credentials; --", "%", "_", "\\", "ü\u{0}"] {
        let encoded: String = url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
        let response = partner.get(&format!("/credentials/ai?q={encoded}&sort={encoded}&dir={encoded}&org={encoded}&page={encoded}")).await;
        assert!(
            response.status().is_success(),
            "{hostile}: {}",
            response.status()
        );
    }
    assert_eq!(setup.app.count("credentials"), 60);
    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let managed = manager
        .page(&format!("/credentials/ai?org={}", setup.green))
        .await;
    assert!(
        !managed.contains("green-key"),
        "the organization filter cannot widen a Manager's scope"
    );
}

#[actix_web::test]
async fn totals_are_kept_and_searches_counted_up_to_a_bound_in_every_order() {
    let setup = setup().await;
    seed_ai(&setup.app, setup.blue, "blue", 1020);
    let partner = &setup.partner;
    let count_of = |page: &str| texts(page, "p.count").join("");
    let names_of = |page: &str| texts(page, "tbody#rows td.name summary");

    let tab = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(count_of(&tab), "1,020 credentials", "the kept total");
    setup.app.query(|conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("DELETE FROM credentials WHERE name = 'blue-key-500'"),
            conn,
        )
    });
    let tab = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(count_of(&tab), "1,019 credentials", "kept through deletes");
    let past_the_end = partner.page("/credentials/ai?page=99").await;
    assert!(names_of(&past_the_end).is_empty());
    assert_eq!(count_of(&past_the_end), "1,019 credentials");

    let mut all: Vec<String> = (0..1020)
        .filter(|n| *n != 500)
        .map(|n| format!("blue-key-{n:02}"))
        .collect();
    all.sort_by_key(|name| name.to_lowercase());

    // A broad term: more than the bound, the page still in name order, a next page offered.
    let broad = partner.fragment("/credentials/ai?q=key").await;
    assert_eq!(count_of(&broad), "more than 1,000 credentials");
    assert_eq!(names_of(&broad), all[..50].to_vec());
    assert!(broad.contains("page=2"), "a next page");
    let deep = partner.fragment("/credentials/ai?q=key&page=21").await;
    assert_eq!(names_of(&deep), all[1000..].to_vec(), "the last 19 matches");

    // A narrow term: counted exactly, sorted either way.
    let narrow: Vec<&String> = all.iter().filter(|name| name.contains("key-10")).collect();
    let page = partner
        .fragment("/credentials/ai?q=KEY-10&sort=name&dir=desc")
        .await;
    assert_eq!(count_of(&page), format!("{} credentials", narrow.len()));
    let mut descending: Vec<String> = narrow.iter().map(|name| name.to_string()).collect();
    descending.reverse();
    assert_eq!(names_of(&page), descending);
    let none = partner.fragment("/credentials/ai?q=no-such-key").await;
    assert_eq!(count_of(&none), "0 credentials");
}

#[actix_web::test]
async fn an_opened_row_loads_its_details_from_the_detail_route() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Detailed key").await;
    let list = setup.partner.page("/credentials/ai").await;
    assert!(list.contains(&format!("hx-get=\"/credentials/ai/{id}\"")));
    assert!(
        list.contains(&format!("href=\"/credentials/ai/{id}\"")),
        "a link without JS"
    );
    assert!(
        !list.contains("Last modified by"),
        "details are not in every row"
    );
    let fragment = setup
        .partner
        .fragment(&format!("/credentials/ai/{id}"))
        .await;
    assert!(
        fragment.contains("Last modified by")
            && fragment.contains("Associated projects")
            && !fragment.contains("<html"),
        "{fragment}"
    );
    // Who created it and who changed it last, each under its own label.
    setup.manager("mia@blue.example", setup.blue).await;
    setup.app.query(move |conn| {
        use diesel::prelude::*;
        diesel::sql_query(format!(
            "UPDATE credentials SET updated_by = (SELECT id FROM users
             WHERE email = 'mia@blue.example') WHERE id = {id}"
        ))
        .execute(conn)
    });
    let partner_email = crate::support::scalar_text(
        &setup.app,
        "SELECT email AS value FROM users WHERE role = 'partner'",
    );
    let fragment = setup
        .partner
        .fragment(&format!("/credentials/ai/{id}"))
        .await;
    assert!(
        fragment.contains(&format!("<dt>Created by</dt><dd>{partner_email}</dd>"))
            && fragment.contains("<dt>Last modified by</dt><dd>mia@blue.example</dd>"),
        "{fragment}"
    );
    let page = setup.partner.page(&format!("/credentials/ai/{id}")).await;
    assert!(page.contains("<html") && page.contains("Created by"));
}
