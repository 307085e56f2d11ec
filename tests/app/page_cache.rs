//! What the busiest pages read is kept in memory (`page_cache`): these check that it is used,
//! that it is never shown across scopes, and that a change, made here or behind keyhold's back,
//! shows at once or within milliseconds.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::support::{Client, TestApp, scalar_i64, seed_credentials, spawn_app, texts, world};

/// Page loads answered from memory so far (`/metrics`).
async fn from_memory(client: &Client) -> u64 {
    let metrics = client.page("/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("keyhold_page_cache_loads_total{from=\"memory\"} "))
        .expect("the page cache's counter")
        .parse()
        .unwrap()
}

/// Loads `path` until a load is answered from memory (the listener connects and hears its
/// first heartbeat in the first second or so); returns the page.
async fn until_cached(client: &Client, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = from_memory(client).await;
        let page = client.page(path).await;
        if from_memory(client).await > before {
            return page;
        }
        assert!(Instant::now() < deadline, "{path} is never kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Searches answered so far by `by` (`memory`, `index` or `database`), from `/metrics`.
async fn searches(client: &Client, by: &str) -> u64 {
    let metrics = client.page("/metrics").await;
    let prefix = format!("keyhold_searches_total{{answered_by=\"{by}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |count| count.parse().unwrap())
}

/// Changes the app's tables the way another program would: no catching up afterwards.
fn behind_its_back(app: &TestApp, sql: &str) {
    app.query_unheard(|conn| diesel::sql_query(sql).execute(conn));
}

/// Loads `path` until `seen` holds for it; how long that took.
async fn until_seen(client: &Client, path: &str, seen: impl Fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    // Short of the 5 s any entry may live: only a notice can have done it.
    while !seen(&client.page(path).await) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{path} still shows the old rows"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// An app with a Partner signed in and `count` AI keys in its organization Blue
/// (`blue-key-0`, …).
async fn blue_keys(count: usize) -> (TestApp, Client) {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let blue = partner.create_organization(&app, "Blue Org").await;
    seed(&app, blue, "blue", count);
    (app, partner)
}

/// An app with a Partner signed in and two organizations, Blue and Green.
async fn two_organizations() -> (TestApp, Client, i64, i64) {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let blue = partner.create_organization(&app, "Blue Org").await;
    let green = partner.create_organization(&app, "Green Org").await;
    (app, partner, blue, green)
}

/// A Manager of `organization`, made by `partner`, signed in.
async fn manager(app: &TestApp, partner: &Client, email: &str, organization: i64) -> Client {
    let account = partner
        .create_user(email, "manager", Some(organization))
        .await;
    app.signed_in(&account).await
}

fn names(page: &str) -> Vec<String> {
    texts(page, "tbody#rows td.name summary")
}

fn seed(app: &TestApp, organization: i64, prefix: &str, count: usize) {
    seed_credentials(
        app,
        organization,
        keyhold::credentials::provider::Kind::Ai,
        count,
        |n| {
            (
                format!("{prefix}-key-{n}"),
                vec![("base_url", "https://api.example.com".to_string())],
                vec![("api_key", "sk-test".to_string())],
            )
        },
    );
}

#[actix_web::test]
async fn a_tab_changed_behind_keyholds_back_shows_the_change_within_milliseconds() {
    let (app, partner) = blue_keys(3).await;
    let tab = until_cached(&partner, "/credentials/ai").await;
    assert_eq!(names(&tab), ["blue-key-0", "blue-key-1", "blue-key-2"]);

    behind_its_back(
        &app,
        "UPDATE credentials SET name = 'renamed-key' WHERE name = 'blue-key-1'",
    );
    let took = until_seen(&partner, "/credentials/ai", |page| {
        names(page) == ["blue-key-0", "blue-key-2", "renamed-key"]
    })
    .await;
    println!("a rename behind keyhold's back showed after {took:?}");

    // An organization renamed, a project using a credential: tables the tab reads too.
    behind_its_back(&app, "UPDATE organizations SET name = 'Navy Org'");
    until_seen(&partner, "/credentials/ai", |page| {
        texts(page, "tbody#rows td")
            .iter()
            .any(|cell| cell == "Navy Org")
    })
    .await;
}

#[actix_web::test]
async fn a_change_made_here_shows_on_the_very_next_page() {
    let (app, partner) = blue_keys(2).await;
    until_cached(&partner, "/credentials/ai").await;
    let id = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'blue-key-0'",
    );
    let locked = partner
        .post_from(
            "/credentials/ai",
            &format!("/credentials/ai/{id}/lock"),
            &[],
        )
        .await;
    assert_eq!(locked.status(), StatusCode::SEE_OTHER);
    // No waiting: this process forgot its pages when the request that changed them ended.
    let tab = partner.page("/credentials/ai").await;
    assert_eq!(texts(&tab, ".badge-locked").len(), 1, "the lock shows");
}

#[actix_web::test]
async fn kept_pages_never_cross_scopes() {
    let (app, partner, blue, green) = two_organizations().await;
    seed(&app, blue, "blue", 2);
    seed(&app, green, "green", 2);
    let blue_manager = manager(&app, &partner, "bea@blue.example", blue).await;
    let green_manager = manager(&app, &partner, "gus@green.example", green).await;
    // The same address, each kept for its own scope, asked for in turn.
    for _ in 0..3 {
        let everything = until_cached(&partner, "/credentials/ai").await;
        assert_eq!(names(&everything).len(), 4);
        let blue_tab = until_cached(&blue_manager, "/credentials/ai").await;
        assert_eq!(names(&blue_tab), ["blue-key-0", "blue-key-1"]);
        let green_tab = until_cached(&green_manager, "/credentials/ai").await;
        assert_eq!(names(&green_tab), ["green-key-0", "green-key-1"]);
    }
    // Within one scope, each query is kept apart: order, organization filter.
    for _ in 0..2 {
        let descending = until_cached(&partner, "/credentials/ai?sort=name&dir=desc").await;
        assert_eq!(
            names(&descending),
            ["green-key-1", "green-key-0", "blue-key-1", "blue-key-0"]
        );
        let green_only = until_cached(&partner, &format!("/credentials/ai?org={green}")).await;
        assert_eq!(names(&green_only), ["green-key-0", "green-key-1"]);
        let fragment = partner.fragment("/credentials/ai").await;
        assert_eq!(
            names(&fragment).len(),
            4,
            "the htmx fragment of the same tab"
        );
    }
}

#[actix_web::test]
async fn a_backup_removed_behind_keyholds_back_leaves_the_backups_tab() {
    let world = world().await;
    let project = world.project;
    behind_its_back(
        &world.app,
        &format!(
            "INSERT INTO backups (project_id, policy_name, name, scheduled_for, phase, started_at, finished_at)
             SELECT {project}, 'manual', 'kept-' || n, now() - n * interval '1 hour', 'Completed',
                    now() - n * interval '1 hour', now() - n * interval '1 hour'
             FROM generate_series(1, 3) n"
        ),
    );
    let path = format!("/projects/{project}?tab=backups");
    let tab = until_cached(&world.partner, &path).await;
    assert!(tab.contains("kept-2"), "{tab}");
    behind_its_back(&world.app, "DELETE FROM backups WHERE name = 'kept-2'");
    until_seen(&world.partner, &path, |page| {
        page.contains("kept-1") && !page.contains("kept-2")
    })
    .await;

    // A tab rendered as the answer to a change (htmx) is read after the change, not from
    // memory, though the tab is kept there when the change begins.
    until_cached(&world.partner, &path).await;
    let kept_1 = scalar_i64(
        &world.app,
        "SELECT id AS n FROM backups WHERE name = 'kept-1'",
    );
    let token = world.partner.token(&path).await;
    let answer = world
        .partner
        .http
        .post(format!(
            "{}/projects/{project}/backups/{kept_1}/delete",
            world.partner.base
        ))
        .header("HX-Request", "true")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let fragment = answer.text().await.unwrap();
    assert!(
        fragment.contains("kept-3") && !fragment.contains(">kept-1<"),
        "{fragment}"
    );

    // While a backup runs the tab refreshes itself, and is read from the tables each time.
    behind_its_back(
        &world.app,
        &format!(
            "INSERT INTO backups (project_id, policy_name, name, scheduled_for, phase, started_at, heartbeat_at)
             VALUES ({project}, 'manual', 'running-now', now(), 'InProgress', now(), now())"
        ),
    );
    until_seen(&world.partner, &path, |page| page.contains("running-now")).await;
    let before = from_memory(&world.partner).await;
    for _ in 0..3 {
        world.partner.page(&path).await;
    }
    assert_eq!(
        from_memory(&world.partner).await,
        before,
        "nothing kept while running"
    );
}

#[actix_web::test]
async fn searches_found_in_memory_list_what_the_database_lists_and_follow_changes() {
    let (app, partner, blue, green) = two_organizations().await;
    seed(&app, blue, "blue", 30);
    seed(&app, green, "green", 3);
    // Kept is the search index, built in the background after the first search.
    let path = "/credentials/ai?q=KEY-1";
    let found = until_cached(&partner, path).await;
    let mut expected: Vec<String> = (0..30)
        .map(|n| format!("blue-key-{n}"))
        .filter(|name| name.contains("key-1"))
        .chain(["green-key-1".to_string()])
        .collect();
    expected.sort();
    assert_eq!(names(&found), expected, "case-blind, in name order");
    let by_index = searches(&partner, "index").await + searches(&partner, "memory").await;
    let descending = partner.page(&format!("{path}&dir=desc")).await;
    expected.reverse();
    assert_eq!(names(&descending), expected);
    // More than a page: the total and the second page, as the database would count them.
    seed(&app, green, "bulk", 60);
    let bulk = until_cached(&partner, "/credentials/ai?q=bulk").await;
    assert_eq!(texts(&bulk, "p.count"), ["60 credentials"]);
    assert_eq!(names(&bulk).len(), 50);
    let second = partner.page("/credentials/ai?q=bulk&page=2").await;
    let mut bulk_names: Vec<String> = (0..60).map(|n| format!("bulk-key-{n}")).collect();
    bulk_names.sort();
    assert_eq!(names(&second), bulk_names[50..]);
    assert!(
        searches(&partner, "index").await + searches(&partner, "memory").await >= by_index + 3,
        "these searches were answered by the index"
    );

    // A Manager's search holds only their organization's rows.
    let manager = manager(&app, &partner, "bea@blue.example", blue).await;
    let theirs = until_cached(&manager, "/credentials/ai?q=green").await;
    assert!(names(&theirs).is_empty(), "{:?}", names(&theirs));
    let theirs = manager
        .page(&format!("/credentials/ai?q=key-2&org={green}"))
        .await;
    assert_eq!(
        names(&theirs).len(),
        11,
        "a Manager's org filter is ignored"
    );

    // Renamed behind keyhold's back: the index is dropped at the notice, the search follows.
    behind_its_back(
        &app,
        "UPDATE credentials SET name = 'renamed', search_text = 'renamed blue org' WHERE name = 'blue-key-1'",
    );
    until_seen(&partner, path, |page| {
        !names(page).contains(&"blue-key-1".to_string())
    })
    .await;
    behind_its_back(
        &app,
        "UPDATE credentials SET name = 'blue-key-100', search_text = 'blue-key-100 blue org' WHERE name = 'renamed'",
    );
    until_seen(&partner, path, |page| {
        names(page).first().map(String::as_str) == Some("blue-key-10")
            && names(page).contains(&"blue-key-100".to_string())
    })
    .await;
}

#[actix_web::test]
async fn rows_searches_showed_are_kept_per_scope_until_a_table_they_came_from_changes() {
    let world = world().await;
    let partner = &world.partner;
    let path = "/credentials/backup?q=storage";
    // (Every notice of the setup's writes heard first: none drops what is kept below.)
    world.app.query(|_| Ok(()));
    let found = until_cached(partner, path).await;
    assert!(found.contains("title=\"Used by shop\""), "{found}");
    assert_eq!(answered_from_memory(partner, path).await, ["Blue storage"]);

    // Never across scopes: a Manager of the same organization reads the rows again.
    let manager = manager(&world.app, partner, "bea@blue.example", world.organization).await;
    // (Making the Manager emptied the cache: the index is built again, the rows read again.)
    world.app.query(|_| Ok(()));
    until_cached(partner, path).await;
    answered_from_memory(partner, path).await;
    let (memory, index) = (
        searches(partner, "memory").await,
        searches(partner, "index").await,
    );
    assert_eq!(names(&manager.page(path).await), ["Blue storage"]);
    assert_eq!(searches(partner, "memory").await, memory);
    assert_eq!(searches(partner, "index").await, index + 1);

    // Changed behind keyhold's back: a project renamed (the row's "used by"), the credential
    // locked, its organization renamed. Each shows at its notice, long before the 4-5 s after
    // which kept rows are read again anyway, and the rows kept afterwards show it too.
    let changes = [
        (
            "UPDATE projects SET name = 'shop-eu'",
            "title=\"Used by shop-eu\"",
        ),
        ("UPDATE credentials SET is_locked = true", "badge-locked"),
        (
            "UPDATE organizations SET name = 'Navy Org'",
            "data-label=\"Organization\">Navy Org</td>",
        ),
    ];
    for (sql, shown) in changes {
        answered_from_memory(partner, path).await;
        behind_its_back(&world.app, sql);
        let took = until_seen(partner, path, |page| page.contains(shown)).await;
        assert!(took < Duration::from_secs(1), "{sql}: {took:?}");
        until_cached(partner, path).await;
        let page = partner.page(path).await;
        assert!(
            page.contains(shown),
            "{sql}: kept rows from before the change"
        );
    }
}

/// Loads a search until its rows come from memory (`/metrics`); their names.
async fn answered_from_memory(client: &Client, path: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = searches(client, "memory").await;
        let page = client.page(path).await;
        if searches(client, "memory").await > before {
            return names(&page);
        }
        assert!(Instant::now() < deadline, "{path}: rows never kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
