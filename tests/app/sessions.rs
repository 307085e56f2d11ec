use reqwest::StatusCode;

use crate::support::{spawn_app, spawn_app_with};

fn session_listener() -> String {
    keyhold::notices::application_name::<keyhold::session_cache::SessionCache>()
}

#[actix_web::test]
async fn sign_in_renews_the_session_cookie() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let login_page = browser.get("/login").await;
    assert_eq!(
        browser.session_cookie(&login_page).await,
        None,
        "the sign-in page starts no session (nothing to fixate)"
    );
    let first = browser.login(&account.email, &account.password).await;
    let before = browser.session_cookie(&first).await.expect("a session");
    // Signing in with a session already in the browser replaces it.
    let signed_in = browser
        .post_from(
            "/",
            "/login",
            &[("email", &account.email), ("password", &account.password)],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let after = browser
        .session_cookie(&signed_in)
        .await
        .expect("new cookie at sign-in");
    assert_ne!(before, after, "session fixation is impossible");

    // The cookie from before the sign-in does not carry the sign-in.
    let fixated = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = fixated
        .get(format!("{}/", app.address))
        .header("cookie", &before)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn anonymous_visits_to_the_sign_in_page_write_no_session_rows() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let sessions = app.count("sessions");
    for _ in 0..30 {
        let visitor = app.client();
        assert_eq!(visitor.get("/login").await.status(), StatusCode::OK);
    }
    // A failed sign-in re-renders the form: still no row.
    let browser = app.client();
    let failed = browser.login(&account.email, "wrong-password").await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.count("sessions"),
        sessions,
        "no row for anyone signed out"
    );

    // The form's token works without JavaScript (a plain post), and only with its cookie.
    let ok = browser.login(&account.email, &account.password).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("sessions"), sessions + 1);
    let token = app.client().token("/login").await;
    let without_cookie = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", app.address))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", account.email.as_str()),
            ("password", account.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(without_cookie.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn a_signed_out_cookie_no_longer_works() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let signed_in = browser.login(&account.email, &account.password).await;
    let cookie = browser.session_cookie(&signed_in).await.unwrap();
    assert_eq!(app.count("sessions WHERE user_id IS NOT NULL"), 2);

    let out = browser.post_from("/", "/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("sessions WHERE user_id IS NOT NULL"),
        1,
        "only the setup session is left"
    );

    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/audit", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert!(
        replay.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
}

#[actix_web::test]
async fn the_session_table_holds_no_cookie_values() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let signed_in = browser.login(&account.email, &account.password).await;
    let cookie = browser.session_cookie(&signed_in).await.unwrap();
    let value = cookie.split_once('=').unwrap().1.to_string();
    let ids: Vec<String> = app.query(|conn| {
        use diesel::prelude::*;
        keyhold::schema::sessions::table
            .select(keyhold::schema::sessions::id)
            .load(conn)
    });
    assert!(
        ids.iter()
            .all(|id| id.len() == 64 && !value.contains(id.as_str()))
    );
}

#[actix_web::test]
async fn idle_sessions_expire() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query("UPDATE sessions SET expires_at = now() - interval '1 second'")
            .execute(conn)
    });
    // keyhold keeps sessions in memory and hears of a changed row within milliseconds (the
    // row was changed behind its back here, so the notice is all it has): allowed a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut response = partner.get("/").await;
    while response.status() == StatusCode::OK && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        response = partner.get("/").await;
    }
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
}

#[actix_web::test]
async fn sessions_end_at_the_absolute_timeout_even_when_active() {
    let app = spawn_app_with(&[("KEYHOLD_SESSION_ABSOLUTE_HOURS", "0")]).await;
    let (partner, _) = app.partner().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = partner.get("/audit").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login?next=%2Faudit");
}

#[actix_web::test]
async fn session_cookie_is_http_only_and_same_site() {
    let app = spawn_app().await;
    let response = app.client().get("/setup").await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure unless configured");

    let secure = spawn_app_with(&[("KEYHOLD_COOKIE_SECURE", "true")]).await;
    let response = secure.client().get("/setup").await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("__Host-") && cookie.contains("Secure"),
        "{cookie}"
    );
}

/// The pid of this app's session listener (its connection to the test database), if connected.
fn listener_pid(app: &crate::support::TestApp) -> Option<i32> {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    app.query_unheard(|conn| {
        use diesel::prelude::*;
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind::<diesel::sql_types::Text, _>(session_listener())
        .load::<Pid>(conn)
    })
    .first()
    .map(|row| row.pid)
}

#[actix_web::test]
async fn a_session_ended_while_the_listener_is_cut_off_is_not_served_from_memory() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let mut listener = None;
    for _ in 0..100 {
        listener = listener_pid(&app);
        if listener.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let listener = listener.expect("the session listener connects");
    // The first request after sign-in writes the session (the time it was last seen); the
    // second leaves it as it is, and its row is then kept in memory.
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
    assert_eq!(partner.get("/").await.status(), StatusCode::OK, "kept");

    // The listener's connection is cut (a PostgreSQL restart, a network fault), and then the
    // session is ended where no notice can reach this process.
    app.query_unheard(|conn| {
        use diesel::prelude::*;
        diesel::sql_query("SELECT pg_terminate_backend($1)")
            .bind::<diesel::sql_types::Integer, _>(listener)
            .execute(conn)
    });
    for _ in 0..100 {
        if listener_pid(&app) != Some(listener) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_ne!(listener_pid(&app), Some(listener), "its backend is gone");
    app.query_unheard(|conn| {
        use diesel::prelude::*;
        diesel::sql_query("DELETE FROM sessions WHERE user_id IS NOT NULL").execute(conn)
    });
    // Losing the listener empties the cache at once: sooner than an entry's 5 s life, and
    // sooner than the listener's reconnection 1 s later (which empties it again).
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(400);
    let mut status = partner.get("/").await.status();
    while status == StatusCode::OK && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = partner.get("/").await.status();
    }
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out within 400 ms");

    // It reconnects on its own, and caching resumes.
    let mut again = None;
    for _ in 0..100 {
        again = listener_pid(&app).filter(|pid| *pid != listener);
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the listener reconnects");
}

#[actix_web::test]
async fn sessions_truncated_behind_keyholds_back_are_not_served_from_memory() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while listener_pid(&app).is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        listener_pid(&app).is_some(),
        "the session listener connects"
    );
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
    assert_eq!(partner.get("/").await.status(), StatusCode::OK, "kept");
    // TRUNCATE names no rows; its notice says "everything". The next request, a moment later
    // (far less than an entry's 5 s life), is refused.
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query("TRUNCATE sessions").execute(conn)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(partner.get("/").await.status(), StatusCode::SEE_OTHER);
}

/// Moves the recorded times of every signed-in session `seconds` into the past, as if that
/// long had passed since the session was last written.
fn age_sessions(app: &crate::support::TestApp, seconds: i64) {
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query(
            "UPDATE sessions SET
                 expires_at = expires_at - make_interval(secs => $1),
                 state = jsonb_set(state, '{seen}',
                                   to_jsonb(((state->>'seen')::bigint - $1)::text))
             WHERE user_id IS NOT NULL AND state ? 'seen'",
        )
        .bind::<diesel::sql_types::BigInt, _>(seconds)
        .execute(conn)
    });
}

#[actix_web::test]
async fn an_active_person_is_never_signed_out_before_the_idle_timeout() {
    let app = spawn_app_with(&[("KEYHOLD_SESSION_IDLE_MINUTES", "1")]).await;
    let (partner, _) = app.partner().await;
    // The first request after sign-in writes the time the session was last seen.
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
    // 50 s later the person is active again, then 15 s after that: 15 s idle of 60.
    age_sessions(&app, 50);
    // The change was made behind keyhold's back: its notice reaches the session cache in
    // milliseconds.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
    age_sessions(&app, 15);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        partner.get("/").await.status(),
        StatusCode::OK,
        "15 s idle with a 1-minute idle timeout"
    );

    // Idle past the timeout (and its write interval): signed out.
    age_sessions(&app, 70);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let response = partner.get("/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// The CSRF token of `page` for a session that lives less than a second
/// (`KEYHOLD_SESSION_ABSOLUTE_HOURS=0`): on a busy machine the second may end between the
/// sign-in and the page, so the person signs in again until the page answers.
async fn token_within_its_second(
    client: &crate::support::Client,
    account: &crate::support::Account,
    page: &str,
) -> String {
    for _ in 0..20 {
        let body = client.page(page).await;
        if let Some(token) = crate::support::csrf_token(&body) {
            return token;
        }
        client.login(&account.email, &account.password).await;
    }
    panic!("no session lasted long enough to load {page}");
}

#[actix_web::test]
async fn a_form_sent_after_its_session_expired_leads_to_sign_in_and_back_to_its_page() {
    let app = spawn_app_with(&[("KEYHOLD_SESSION_ABSOLUTE_HOURS", "0")]).await;
    let (partner, account) = app.partner().await;
    let token = token_within_its_second(&partner, &account, "/organizations").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let sent = partner
        .http
        .post(format!("{}/organizations", partner.base))
        .header("Referer", format!("{}/organizations", partner.base))
        .form(&[("csrf_token", token.as_str()), ("name", "Late Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "not a 403");
    assert_eq!(
        sent.headers()["location"],
        "/login?next=%2Forganizations&expired=1"
    );
    assert_eq!(app.count("organizations"), 0, "nothing changed");
    let login = partner.page("/login?next=%2Forganizations&expired=1").await;
    assert!(
        crate::support::texts(&login, "#login-expired")
            .join("")
            .contains("Your session ended"),
        "the sign-in page says why"
    );
    let signed_in = partner
        .post_from(
            "/login?next=%2Forganizations&expired=1",
            "/login",
            &[
                ("email", account.email.as_str()),
                ("password", account.password.as_str()),
                ("next", "/organizations"),
            ],
        )
        .await;
    assert_eq!(
        signed_in.headers()["location"],
        "/organizations",
        "and back"
    );

    // With htmx: told to go there.
    let other = spawn_app_with(&[("KEYHOLD_SESSION_ABSOLUTE_HOURS", "0")]).await;
    let (client, account) = other.partner().await;
    let token = token_within_its_second(&client, &account, "/credentials/ai").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let htmx = client
        .http
        .post(format!("{}/credentials/ai/1/lock", client.base))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token.as_str())
        .header("Referer", format!("{}/credentials/ai?q=x", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(htmx.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        htmx.headers()["hx-redirect"],
        "/login?next=%2Fcredentials%2Fai%3Fq%3Dx&expired=1"
    );
}

#[actix_web::test]
async fn a_form_sent_after_its_session_was_deleted_leads_to_sign_in_not_to_a_403() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let token = partner.token("/organizations").await;
    // The session row is gone (ended elsewhere): the form's token matches nothing any more.
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query("DELETE FROM sessions").execute(conn)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let send = || {
        partner
            .http
            .post(format!("{}/organizations", partner.base))
            .header("Referer", format!("{}/organizations?x=1", partner.base))
            .form(&[("csrf_token", token.as_str()), ("name", "Late Org")])
            .send()
    };
    let mut sent = send().await.unwrap();
    while sent.status() != StatusCode::SEE_OTHER && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        sent = send().await.unwrap();
    }
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "not a 403");
    assert_eq!(
        sent.headers()["location"],
        "/login?next=%2Forganizations%3Fx%3D1&expired=1"
    );
    assert_eq!(app.count("organizations"), 0, "nothing changed");
}
