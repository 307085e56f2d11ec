//! The audit log's filters, paging and exports (`/audit`, `/audit.csv`, `/audit.ndjson`,
//! `/api/v1/audit`): what each filter finds, that no filter reaches outside the reader's
//! organizations, and that the exports hold exactly the filtered events, streamed, with cells a
//! spreadsheet would run defused, and are themselves audited.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

use crate::api::{Api, token};
use crate::support::{Client, TestApp, scalar_i64, scalar_text, spawn_app, texts};

/// A partner account with Blue (Manager mia, User ulf) and Green (Manager gus).
struct World {
    app: TestApp,
    partner: Client,
    mia: Client,
    blue: i64,
    green: i64,
}

async fn world() -> World {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let blue = partner.create_organization(&app, "Blue Org").await;
    let green = partner.create_organization(&app, "Green Org").await;
    let mia = app
        .signed_in(
            &partner
                .create_user("mia@blue.example", "manager", Some(blue))
                .await,
        )
        .await;
    partner
        .create_user("ulf@blue.example", "user", Some(blue))
        .await;
    app.signed_in(
        &partner
            .create_user("gus@green.example", "manager", Some(green))
            .await,
    )
    .await;
    World {
        app,
        partner,
        mia,
        blue,
        green,
    }
}

/// Records `count` events of `actor` as keyhold would, numbered `1..=count` in order of id;
/// `label` is an SQL expression over that number `n`.
fn record(app: &TestApp, count: i64, actor: &str, organization: Option<i64>, what: Event) {
    let organization = organization.map_or("NULL".to_string(), |id| id.to_string());
    let Event {
        action,
        kind,
        label,
        at,
    } = what;
    let sql = format!(
        "INSERT INTO audit_events (at, actor_id, actor_label, partner_id, organization_id, action,
             object_kind, object_id, object_label, fields)
         SELECT {at}, u.id, u.email, u.partner_id, {organization}, '{action}', '{kind}', n,
             {label}, ARRAY['name']
         FROM users u, generate_series(1, {count}) AS n WHERE u.email = '{actor}' ORDER BY n"
    );
    app.query(move |conn| diesel::sql_query(sql).execute(conn));
}

struct Event {
    action: &'static str,
    kind: &'static str,
    label: &'static str,
    at: &'static str,
}

fn user_id(app: &TestApp, email: &str) -> i64 {
    scalar_i64(
        app,
        &format!("SELECT id AS n FROM users WHERE email = '{email}'"),
    )
}

/// The Object cells of an audit page.
async fn objects(client: &Client, path: &str) -> Vec<String> {
    let response = client.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    texts(&response.text().await.unwrap(), "td[data-label=Object]")
}

/// Three locks in Blue (1 November), two in Green (20 November), four projects in Blue (now).
fn locks_and_projects(world: &World) {
    let app = &world.app;
    let lock = |label, at| Event {
        action: "credential.lock",
        kind: "credential",
        label,
        at,
    };
    record(
        app,
        3,
        "mia@blue.example",
        Some(world.blue),
        lock("'blue-key ' || n", "'2026-11-01 10:00+00'"),
    );
    record(
        app,
        2,
        "gus@green.example",
        Some(world.green),
        lock("'green-key ' || n", "'2026-11-20 10:00+00'"),
    );
    record(
        app,
        4,
        "pat@partner.example",
        Some(world.blue),
        Event {
            action: "project.create",
            kind: "project",
            label: "'shop ' || n",
            at: "now()",
        },
    );
}

fn all_contain(cells: &[String], part: &str) -> bool {
    cells.iter().all(|cell| cell.contains(part))
}

#[actix_web::test]
async fn each_filter_narrows_the_log_and_they_combine() {
    let world = world().await;
    locks_and_projects(&world);
    let (blue, green) = (world.blue, world.green);
    let gus = user_id(&world.app, "gus@green.example");
    let partner = &world.partner;

    let page = partner.page("/audit?action=credential.lock").await;
    assert_eq!(texts(&page, "#audit-count"), ["5 events"]);
    let actions = texts(&page, "td[data-label=Action]");
    assert!(
        actions.iter().all(|a| a == "Locked credential"),
        "{actions:?}"
    );
    assert!(all_contain(
        &texts(&page, "td[data-label=Object]"),
        "Credential"
    ));

    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("/audit?action=credential.lock&org={blue}"),
            3,
            "blue-key",
        ),
        (format!("/audit?person={gus}"), 2, "green-key"),
        ("/audit?kind=project".into(), 4, "shop"),
        (
            "/audit?from=2026-11-15&to=2026-11-30".into(),
            2,
            "green-key",
        ),
        ("/audit?to=2026-11-01".into(), 3, "blue-key"),
        ("/audit?q=GREEN-KEY".into(), 2, "green-key"),
        ("/audit?q=mia%40blue&kind=credential".into(), 3, "blue-key"),
        (
            format!("/audit?org={green}&kind=credential"),
            2,
            "green-key",
        ),
    ];
    for (path, count, part) in cases {
        let cells = objects(partner, &path).await;
        assert_eq!(cells.len(), count, "{path}: {cells:?}");
        assert!(all_contain(&cells, part), "{path}: {cells:?}");
    }
    // Wildcards are searched for as themselves.
    assert!(objects(partner, "/audit?q=%25").await.is_empty());
    assert!(objects(partner, "/audit?q=_").await.is_empty());

    // With htmx, only the results come back.
    let fragment = partner.fragment("/audit?kind=project").await;
    assert!(!fragment.contains("<html") && !fragment.contains("id=\"audit-filters\""));
    assert_eq!(texts(&fragment, "#audit-count"), ["4 events"]);

    // The form keeps the filter, and its lists offer what the reader may choose.
    let page = partner
        .page(&format!("/audit?person={gus}&kind=project"))
        .await;
    assert_eq!(
        texts(&page, "#person option[selected]"),
        ["gus@green.example"]
    );
    assert_eq!(texts(&page, "#kind option[selected]"), ["Project"]);
    assert!(texts(&page, "#org option").contains(&"Green Org".to_string()));
    let people = texts(&world.mia.page("/audit").await, "#person option");
    for expected in [
        "mia@blue.example",
        "ulf@blue.example",
        "pat@partner.example",
    ] {
        assert!(people.contains(&expected.to_string()), "{people:?}");
    }
    assert!(
        !people.contains(&"gus@green.example".to_string()),
        "{people:?}"
    );
}

#[actix_web::test]
async fn sign_ins_and_sign_outs_show_only_when_asked_for() {
    let world = world().await;
    let shown = |page: &str| texts(page, "td[data-label=Action]");
    let default = shown(&world.partner.page("/audit").await);
    assert!(
        default.contains(&"Created organization".to_string()),
        "{default:?}"
    );
    assert!(
        !default.iter().any(|action| action.starts_with("Signed")),
        "{default:?}"
    );
    let with = shown(&world.partner.page("/audit?sign_ins=1").await);
    assert!(with.contains(&"Signed in".to_string()), "{with:?}");
    let asked = shown(&world.partner.page("/audit?action=session.sign_in").await);
    assert!(
        !asked.is_empty() && asked.iter().all(|a| a == "Signed in"),
        "{asked:?}"
    );
    let page = world.partner.page("/audit").await;
    assert_eq!(texts(&page, "#sign_ins[checked]").len(), 0);
    let page = world.partner.page("/audit?sign_ins=1").await;
    assert_eq!(texts(&page, "#sign_ins[checked]").len(), 1);
}

#[actix_web::test]
async fn a_manager_never_sees_another_organizations_events_whatever_the_filter() {
    let world = world().await;
    locks_and_projects(&world);
    let green = world.green;
    let gus = user_id(&world.app, "gus@green.example");
    let mia = &world.mia;
    for path in [
        format!("/audit?org={green}"),
        format!("/audit?org={green}&sign_ins=1"),
        format!("/audit?person={gus}&sign_ins=1"),
        "/audit?q=green&sign_ins=1".to_string(),
        "/audit?sign_ins=1".to_string(),
    ] {
        let body = mia.page(&path).await;
        assert!(
            !body.contains("green-key")
                && !body.contains("gus@green")
                && !body.contains("Green Org"),
            "{path}"
        );
    }
    assert_eq!(objects(mia, "/audit?action=credential.lock").await.len(), 3);

    for path in [
        format!("/audit.csv?org={green}"),
        format!("/audit.ndjson?org={green}"),
        "/audit.csv?sign_ins=1".to_string(),
        "/audit.ndjson?sign_ins=1".to_string(),
    ] {
        let response = mia.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("green-key")
                && !body.contains("gus@green")
                && !body.contains("Green Org"),
            "{path}: {body}"
        );
    }
    let header_only = mia.get(&format!("/audit.csv?org={green}")).await;
    assert_eq!(header_only.text().await.unwrap().lines().count(), 1);

    let api = Api::new(&world.app, &token(mia, "mine", &["audit:read"]).await);
    let (status, answer) = api.get(&format!("/api/v1/audit?org={green}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["total"], 0, "{answer}");
    let (_, everything) = api.get("/api/v1/audit").await;
    assert!(!everything.to_string().contains("green"), "{everything}");

    let user = world.app.client();
    user.login("ulf@blue.example", "user-password-123").await;
    for path in ["/audit", "/audit.csv", "/audit.ndjson"] {
        assert_eq!(
            user.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
}

#[actix_web::test]
async fn the_log_pages_fifty_events_at_a_time_with_a_total() {
    let world = world().await;
    record(
        &world.app,
        120,
        "pat@partner.example",
        Some(world.blue),
        Event {
            action: "project.create",
            kind: "project",
            label: "'widget ' || n",
            at: "now()",
        },
    );
    let first = world.partner.page("/audit?kind=project").await;
    assert_eq!(texts(&first, "#audit-count"), ["120 events"]);
    let cells = texts(&first, "td[data-label=Object]");
    assert_eq!(cells.len(), 50);
    assert!(cells[0].ends_with("widget 120"), "{cells:?}");
    assert!(texts(&first, ".pager span")[0].contains("Page 1 of 3"));
    let html = scraper::Html::parse_document(&first);
    let older = scraper::Selector::parse(".pager a").unwrap();
    let links: Vec<&str> = html
        .select(&older)
        .filter_map(|a| a.value().attr("href"))
        .collect();
    assert_eq!(links, ["/audit?kind=project&page=2"]);
    let last = world.partner.page("/audit?kind=project&page=3").await;
    let cells = texts(&last, "td[data-label=Object]");
    assert_eq!(cells.len(), 20);
    assert!(cells[19].ends_with("widget 1"), "{cells:?}");
    assert!(!last.contains("Older"));
    let beyond = world.partner.page("/audit?kind=project&page=9").await;
    assert!(beyond.contains("No events on this page"));
}

/// Labels a spreadsheet would run, and ones CSV must quote.
const TRICKY_LABELS: &str = "(ARRAY['=HYPERLINK(\"http://evil.example\")', '+1', '-2', '@SUM(A1)',
    E'\\tindented', E'\\rreturn', 'plain, with a comma', 'say \"hi\"', E'two\\nlines', 'ok'])[1 + n % 10]";

/// Parses CSV with Python's `csv` module.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys\n\
             rows = list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8')))\n\
             print(json.dumps(rows))",
        ])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The body of a streamed download, and how many chunks it came in.
async fn download(response: reqwest::Response) -> (String, usize) {
    let mut response = response;
    let (mut body, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        chunks += 1;
    }
    (String::from_utf8(body).unwrap(), chunks)
}

#[actix_web::test]
async fn exports_stream_exactly_the_filtered_events_as_csv_and_ndjson() {
    let world = world().await;
    let app = &world.app;
    record(
        app,
        3000,
        "mia@blue.example",
        Some(world.blue),
        Event {
            action: "credential.update",
            kind: "credential",
            label: TRICKY_LABELS,
            at: "now() - interval '1 day'",
        },
    );
    locks_and_projects(&world);
    let expected_ids: Vec<i64> = scalar_text(
        app,
        "SELECT string_agg(id::text, ',' ORDER BY id DESC) AS value FROM audit_events
         WHERE action = 'credential.update'",
    )
    .split(',')
    .map(|id| id.parse().unwrap())
    .collect();
    assert_eq!(expected_ids.len(), 3000);
    let filter = format!("action=credential.update&org={}", world.blue);

    let response = world.partner.get(&format!("/audit.ndjson?{filter}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed"
    );
    let (ndjson, chunks) = download(response).await;
    assert!(chunks > 1, "{chunks} chunk");
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, expected_ids);
    assert_eq!(lines[0]["action_label"], "Edited credential");
    assert_eq!(lines[0]["organization"], "Blue Org");
    assert_eq!(lines[0]["actor"], "mia@blue.example");

    let response = world.partner.get(&format!("/audit.csv?{filter}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"keyhold-audit-"),
        "{disposition}"
    );
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed"
    );
    let (csv, _) = download(response).await;
    let rows = parse_csv(&csv);
    assert_eq!(rows[0], keyhold::audit::export::CSV_COLUMNS);
    assert_eq!(rows.len(), 3001);
    let column = |name: &str| {
        keyhold::audit::export::CSV_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    let (id, object, organization) = (column("id"), column("object"), column("organization"));
    let mut defused = 0;
    for (row, line) in rows[1..].iter().zip(&lines) {
        assert_eq!(row[id], line["id"].as_i64().unwrap().to_string());
        assert_eq!(row[organization], "Blue Org");
        let raw = line["object"].as_str().unwrap();
        if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            assert_eq!(row[object], format!("'{raw}"));
            defused += 1;
        } else {
            assert_eq!(row[object], raw);
        }
    }
    assert_eq!(defused, 1800, "six labels in ten start like a formula");
}

#[actix_web::test]
async fn an_export_is_audited_with_its_filter_and_leaves_itself_out() {
    let world = world().await;
    locks_and_projects(&world);
    let first = world.partner.get("/audit.ndjson?action=audit.export").await;
    assert_eq!(
        download(first).await.0,
        "",
        "the export's own row is not in it"
    );
    let csv = world.partner.get("/audit.csv?kind=project&q=shop").await;
    let rows = parse_csv(&download(csv).await.0);
    assert_eq!(rows.len(), 5);

    let recorded = scalar_text(
        &world.app,
        "SELECT string_agg(concat_ws(' | ', actor_label, object_kind, object_label,
             array_to_string(fields, ',')), E'\\n' ORDER BY id) AS value
         FROM audit_events WHERE action = 'audit.export'",
    );
    assert_eq!(
        recorded,
        "pat@partner.example | audit_log | NDJSON of action=audit.export | action\n\
         pat@partner.example | audit_log | CSV of q=shop&kind=project | q,kind"
    );
    let shown = world.partner.page("/audit?action=audit.export").await;
    assert_eq!(
        texts(&shown, "td[data-label=Action]"),
        ["Exported the audit log", "Exported the audit log"]
    );
}

#[actix_web::test]
async fn a_wrong_filter_is_said_beside_its_field_and_exports_nothing() {
    let world = world().await;
    let response = world.partner.get("/audit?from=yesterday&person=abc").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#from-error"),
        ["Enter a date as YYYY-MM-DD (UTC)."]
    );
    assert_eq!(
        texts(&body, "#person-error"),
        ["Choose a person from the list."]
    );
    assert!(
        body.contains("value=\"yesterday\""),
        "the typed value is kept"
    );
    let backwards = world
        .partner
        .get("/audit?from=2026-12-02&to=2026-12-01")
        .await;
    assert_eq!(backwards.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for path in [
        "/audit.csv?from=yesterday",
        "/audit.ndjson?action=DROP%20TABLE",
    ] {
        let response = world.partner.get(path).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}"
        );
    }
    assert_eq!(
        scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'audit.export'"
        ),
        0
    );
}

#[actix_web::test]
async fn the_api_takes_the_same_filters_and_keeps_them_in_its_next_link() {
    let world = world().await;
    locks_and_projects(&world);
    record(
        &world.app,
        60,
        "pat@partner.example",
        Some(world.blue),
        Event {
            action: "policy.create",
            kind: "policy",
            label: "'nightly ' || n",
            at: "now()",
        },
    );
    let api = Api::new(
        &world.app,
        &token(&world.partner, "siem", &["audit:read"]).await,
    );
    let (status, locks) = api
        .get(&format!(
            "/api/v1/audit?action=credential.lock&org={}",
            world.blue
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(locks["total"], 3, "{locks}");
    assert_eq!(locks["items"][0]["action_label"], "Locked credential");

    let (_, first) = api.get("/api/v1/audit?kind=policy").await;
    assert_eq!(first["total"], 60);
    assert_eq!(first["next"], "/api/v1/audit?kind=policy&page=2");
    let (_, second) = api.get("/api/v1/audit?kind=policy&page=2").await;
    assert_eq!(second["items"].as_array().unwrap().len(), 10);
    assert!(second["next"].is_null());

    // Unlike the page, the API answers sign-ins unless told not to.
    let (_, all) = api.get("/api/v1/audit?action=session.sign_in").await;
    assert!(all["total"].as_i64().unwrap() > 0);
    let sessions = scalar_i64(
        &world.app,
        "SELECT count(*) AS n FROM audit_events WHERE action LIKE 'session.%'",
    );
    assert!(sessions > 0);
    let (_, plain) = api.get("/api/v1/audit").await;
    let (_, without) = api.get("/api/v1/audit?sign_ins=false").await;
    assert_eq!(
        plain["total"].as_i64().unwrap() - without["total"].as_i64().unwrap(),
        sessions
    );

    let (status, problem) = api.get("/api/v1/audit?from=soon").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["errors"]["from"].is_string(), "{problem}");
}
