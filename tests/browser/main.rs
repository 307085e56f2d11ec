//! Browser tests: Debian's headless Chromium, driven over WebDriver, against the real app with a
//! real S3 server and real PostgreSQL databases; once with JavaScript and once without.
//! Screenshots of the main pages go to `target/screenshots` (or `KEYHOLD_SCREENSHOTS`).

mod layout;
mod schedule;
#[path = "../support/mod.rs"]
mod support;
mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;

use crate::support::fakes::{GOOD, S3_ACCESS_KEY};
use crate::support::{DataDb, TestApp, scalar_i64, spawn_app_with, totp_code};
use crate::webdriver::{Browser, Driver};

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

fn screenshots() -> PathBuf {
    let dir = std::env::var("KEYHOLD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Console entries that count as errors: anything the page's scripts or the CSP report, not
/// the network lines Chromium logs for the expected 4xx answers of forms (422, 409).
fn errors(entries: Vec<Value>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|entry| {
            entry["level"] == "SEVERE"
                || entry["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))
        })
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !(entry["source"] == "network"
                && (message.contains("status of 422") || message.contains("status of 409")))
        })
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Everything a journey visits is checked for console errors and CSP violations.
struct Journey {
    browser: Browser,
    base: String,
    seen: Vec<String>,
    checked_pages: usize,
}

impl Journey {
    async fn visit(&mut self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.base)).await;
        self.check(path).await;
    }

    async fn check(&mut self, what: &str) {
        for error in errors(self.browser.console().await) {
            self.seen.push(format!("{what}: {error}"));
        }
    }

    /// Marks the page; `reloaded` tells whether a navigation replaced it since.
    async fn mark(&self) {
        self.browser
            .script("window.keyholdMarker = 42; return true;")
            .await;
    }

    async fn reloaded(&self) -> bool {
        self.browser
            .script("return window.keyholdMarker !== 42;")
            .await
            != Value::Bool(false)
    }

    async fn shot(&self, name: &str) {
        let dir = screenshots();
        for (suffix, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.browser.set_window(width, height).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.browser
                .screenshot(&dir.join(format!("{name}-{suffix}.png")))
                .await;
        }
        self.browser.set_window(DESKTOP.0, DESKTOP.1).await;
    }

    /// Runs axe-core (from npm, installed by scripts/test) on the page: serious and critical
    /// violations fail.
    async fn accessible(&mut self, what: &str) {
        let axe = axe_source();
        self.browser.script(&format!("{axe}; return true;")).await;
        let found = self
            .browser
            .script_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))));",
            )
            .await;
        let found = found
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("axe-core did not run on {what}: {found}"));
        self.checked_pages += 1;
        for violation in found {
            self.seen.push(format!(
                "{what}: axe {}",
                violation.as_str().unwrap_or_default()
            ));
        }
    }
}

fn axe_source() -> String {
    let path = std::env::var("KEYHOLD_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/npm/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "axe-core at {} (bash scripts/test installs it from npm)",
            path.display()
        )
    })
}

/// An app with its scheduler off (the journey presses "Backup now"), an S3 server, chromedriver.
async fn start() -> (TestApp, support::fakes::S3Server, Driver) {
    let app = spawn_app_with(&[("KEYHOLD_SCHEDULER", "false"), ("KEYHOLD_WORKERS", "2")]).await;
    (app, support::fakes::start_s3().await, Driver::start().await)
}

#[actix_web::test]
async fn a_partner_walks_the_whole_journey_with_javascript() {
    let (app, s3, driver) = start().await;
    let mut journey = Journey {
        browser: driver.browser(true, DESKTOP.0, DESKTOP.1).await,
        base: app.address.clone(),
        seen: Vec::new(),
        checked_pages: 0,
    };

    // First run.
    journey.visit("/").await;
    assert!(journey.browser.current_url().await.ends_with("/setup"));

    // The detector works: an inline script is refused by the CSP and reported.
    journey
        .browser
        .script("const s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.appendChild(s); return true;")
        .await;
    let reported = errors(journey.browser.console().await);
    assert!(
        reported
            .iter()
            .any(|e| e.contains("Content Security Policy")),
        "an inline script must be reported as a CSP violation: {reported:?}"
    );
    journey.accessible("setup").await;
    journey
        .browser
        .fill("#partner_name", "Acme Cloud Partners")
        .await;
    journey.browser.fill("#display_name", "Pat Partner").await;
    journey.browser.fill("#email", "pat@acme.example").await;
    journey
        .browser
        .fill("#password", "partner-password-1")
        .await;
    journey.browser.click("button.primary").await;
    journey
        .browser
        .wait_for_text("header .who", "Pat Partner", 5)
        .await;

    // An organization and its Manager.
    journey.visit("/organizations").await;
    journey.browser.fill("#name", "Blue Org").await;
    journey.browser.click("button.primary").await;
    journey.browser.wait_for_text("table", "Blue Org", 5).await;
    journey.visit("/users").await;
    journey.browser.fill("#email", "mia@blue.example").await;
    journey.browser.fill("#display_name", "Mia Manager").await;
    journey.browser.select("#role", "manager").await;
    let blue = app.organization_id("Blue Org").to_string();
    journey.browser.select("#organization_id", &blue).await;
    journey
        .browser
        .fill("#password", "manager-password-1")
        .await;
    journey
        .browser
        .click("form[action='/users'] button.primary")
        .await;
    journey
        .browser
        .wait_for_text("table", "mia@blue.example", 5)
        .await;
    journey.accessible("users").await;

    // A backup credential: a wrong secret first.
    journey.visit("/credentials/backup/new").await;
    add_backup(
        &journey.browser,
        &s3.endpoint,
        "Blue backups",
        "wrong-secret",
    )
    .await;
    journey
        .browser
        .wait_for_text(".verify-box", "Invalid S3 credentials", 10)
        .await;
    journey.shot("credential-form-errors").await;
    journey.check("add with a wrong secret").await;
    add_backup(&journey.browser, &s3.endpoint, "Blue backups", GOOD).await;
    journey
        .browser
        .wait_for_text("#results", "Blue backups", 10)
        .await;
    journey.visit("/credentials/backup/new").await;
    add_backup(&journey.browser, &s3.endpoint, "Spare backups", GOOD).await;
    journey
        .browser
        .wait_for_text("#results", "Spare backups", 10)
        .await;
    journey.check("credentials added").await;
    journey.accessible("backup tab").await;

    // Search swaps only the table: the page is never reloaded.
    journey.mark().await;
    journey.browser.fill("#q", "spare").await;
    journey
        .browser
        .wait_for_text(".count", "1 credential", 5)
        .await;
    assert_eq!(journey.browser.count("tbody#rows tr").await, 1);
    assert!(!journey.reloaded().await, "search reloaded the page");
    journey.browser.fill("#q", "backups").await;
    journey
        .browser
        .wait_for_text(".count", "2 credentials", 5)
        .await;

    // Row actions, each swapping its row (or the table for the default).
    let blue_id = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'Blue backups'",
    );
    // An opened row loads its details.
    journey
        .browser
        .click(&format!("#credential-{blue_id} td.name summary"))
        .await;
    journey
        .browser
        .wait_for_text(
            &format!("#credential-{blue_id} .detail-body"),
            "Created by",
            5,
        )
        .await;
    let spare_id = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'Spare backups'",
    );
    click_if_closed(
        &journey.browser,
        &format!("#credential-{blue_id} details.menu"),
    )
    .await;
    journey
        .browser
        .click(&format!(
            "#credential-{blue_id} button[formaction$='/default']"
        ))
        .await;
    journey
        .browser
        .wait_for_text(&format!("#credential-{blue_id}"), "Default", 5)
        .await;
    click_if_closed(
        &journey.browser,
        &format!("#credential-{spare_id} details.menu"),
    )
    .await;
    journey
        .browser
        .click(&format!(
            "#credential-{spare_id} button[formaction$='/lock']"
        ))
        .await;
    journey
        .browser
        .wait_for_text(&format!("#credential-{spare_id}"), "Locked", 5)
        .await;
    journey
        .browser
        .click(&format!(
            "#credential-{spare_id} button[formaction$='/unlock']"
        ))
        .await;
    journey
        .browser
        .wait_for_text(&format!("#credential-{spare_id}"), "Unlocked", 5)
        .await;
    let focused = journey
        .browser
        .script("return document.activeElement && document.activeElement.id;")
        .await;
    assert_eq!(
        focused,
        Value::String(format!("lock-{spare_id}")),
        "focus stays on the swapped row's button"
    );
    journey
        .browser
        .click(&format!(
            "#credential-{spare_id} button[formaction$='/verify']"
        ))
        .await;
    journey
        .browser
        .wait_for_text("#messages", "Spare backups verified", 10)
        .await;
    journey
        .browser
        .click(&format!("#credential-{spare_id} .delete"))
        .await;
    journey.browser.accept_dialog().await;
    journey
        .browser
        .wait_for_text("#messages", "Spare backups is deleted", 5)
        .await;
    assert!(
        journey
            .browser
            .try_find(&format!("#credential-{spare_id}"))
            .await
            .is_none()
    );
    assert!(!journey.reloaded().await, "an action reloaded the page");
    journey.check("row actions").await;
    journey.shot("credentials-backup").await;
    for kind in ["cloud", "billing", "showback", "ai"] {
        journey.visit(&format!("/credentials/{kind}")).await;
        journey.shot(&format!("credentials-{kind}")).await;
    }
    journey.accessible("ai tab").await;

    // A project with backup: the default credential is pre-selected.
    let data = DataDb::with_orders(25);
    let target = DataDb::empty();
    journey.visit("/projects/new").await;
    let chosen = journey.browser.script("return document.querySelector('#backup_credential_id').selectedOptions[0].textContent;").await;
    assert!(
        chosen
            .as_str()
            .unwrap_or_default()
            .starts_with("Blue backups (default)"),
        "{chosen}"
    );
    journey.browser.fill("#name", "shop").await;
    journey.browser.fill("#database_url", &data.url).await;
    journey.browser.click("#backup_enabled").await;
    journey.browser.click("form.form button.primary").await;
    journey.browser.wait_for_text("h1", "shop", 10).await;
    journey.check("project created").await;

    journey.browser.fill("#policy-name", "nightly").await;
    journey.browser.fill("#cron", "30 2 * * *").await;
    journey.browser.fill("#timezone", "Europe/Berlin").await;
    journey
        .browser
        .wait_for_text("#cron-preview", "02:30", 5)
        .await;
    journey
        .browser
        .click("input[name=namespaces][value=app]")
        .await;
    journey.browser.click("#policy-form button.primary").await;
    journey
        .browser
        .wait_for_text("#backup-tab", "nightly", 5)
        .await;
    journey.accessible("schedules").await;

    journey.mark().await;
    journey.browser.click("form[action$='/run'] button").await;
    journey
        .browser
        .wait_for_text("#backup-tab", "Completed", 30)
        .await;
    assert!(!journey.reloaded().await, "backup now reloaded the page");
    journey.shot("project-backups").await;
    journey.accessible("backups").await;

    click_if_closed(&journey.browser, "#backup-tab details.menu").await;
    journey.browser.click("details.restore summary").await;
    // A name too short is caught by the browser before anything asks or is sent.
    journey
        .browser
        .fill("details.restore input[name=restore_name]", "ab")
        .await;
    journey
        .browser
        .click("details.restore button.primary")
        .await;
    let too_short = journey
        .browser
        .script("return document.querySelector('details.restore input[name=restore_name]').validity.tooShort;")
        .await;
    assert_eq!(too_short, Value::Bool(true), "the browser flags the name");
    assert_eq!(app.count("restores"), 0, "nothing was sent");
    journey
        .browser
        .fill("details.restore input[name=restore_name]", "copy")
        .await;
    journey
        .browser
        .fill(
            "details.restore input[name=target_database_url]",
            &target.url,
        )
        .await;
    // Into another database: the person's own choice, started at once (no question).
    journey
        .browser
        .click("details.restore button.primary")
        .await;
    journey
        .browser
        .wait_for_text("#backup-tab", "copy", 10)
        .await;
    journey
        .browser
        .wait_for_text("#backup-tab", "Completed", 30)
        .await;
    assert_eq!(target.count(), 25, "the restore brought the rows back");
    journey.shot("project-restores").await;

    // While something runs the tab refreshes itself every 2 s; an open row menu stays open
    // (the refresh waits), and once it is closed the tab shows the running one's progress.
    let completed = scalar_i64(
        &app,
        "SELECT id AS n FROM backups WHERE phase = 'Completed' ORDER BY id LIMIT 1",
    );
    let project = scalar_i64(&app, "SELECT project_id AS n FROM backups LIMIT 1");
    app.query(|conn| {
        diesel::sql_query(
            "INSERT INTO backups (project_id, policy_id, policy_name, name, scheduled_for, \
             phase, namespaces, started_at) SELECT project_id, policy_id, policy_name, \
             name || '-running', scheduled_for + interval '1 hour', 'InProgress', namespaces, \
             now() FROM backups ORDER BY id LIMIT 1",
        )
        .execute(conn)
    });
    journey
        .visit(&format!("/projects/{project}?tab=backups"))
        .await;
    let menu = format!("#backup-{completed} details.menu");
    click_if_closed(&journey.browser, &menu).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        journey
            .browser
            .script(&format!("return document.querySelector('{menu}').open;"))
            .await,
        Value::Bool(true),
        "the menu stayed open through two refreshes"
    );
    app.query(|conn| {
        diesel::sql_query("UPDATE backups SET progress_bytes = 5242880 WHERE phase = 'InProgress'")
            .execute(conn)
    });
    journey.browser.click(&format!("{menu} > summary")).await;
    journey
        .browser
        .wait_for_text("#backup-tab", "5.0 MiB so far", 6)
        .await;
    // One spinner for the one run, also while the tab refreshes itself (htmx marks the tab as
    // requesting): not the Backup now buttons' too, and not beside the phase's ⟳.
    let spinning = journey
        .browser
        .script(
            "const tab = document.getElementById('backup-tab');
             tab.classList.add('htmx-request');
             const shown = [...tab.querySelectorAll('.spinner')]
               .filter(s => getComputedStyle(s).display !== 'none').length;
             const glyphs = [...tab.querySelectorAll('.phase-InProgress')]
               .filter(p => getComputedStyle(p, '::before').content !== 'none').length;
             tab.classList.remove('htmx-request');
             return [shown, glyphs];",
        )
        .await;
    assert_eq!(
        spinning,
        serde_json::json!([1, 0]),
        "spinners shown, ⟳ beside one"
    );
    app.query(|conn| {
        diesel::sql_query("DELETE FROM backups WHERE phase = 'InProgress'").execute(conn)
    });

    // Into the project database: the server checks the whole form first, then asks in the
    // row's dialog; only the answer starts the restore.
    journey
        .visit(&format!("/projects/{project}?tab=backups"))
        .await;
    click_if_closed(&journey.browser, &menu).await;
    let dialog = format!("#backup-{completed} details.restore");
    click_if_closed(&journey.browser, &dialog).await;
    journey
        .browser
        .fill(&format!("{dialog} input[name=restore_name]"), "in-place")
        .await;
    journey
        .browser
        .click(&format!("{dialog} button.primary"))
        .await;
    journey
        .browser
        .wait_for_text(&dialog, "into the project database?", 10)
        .await;
    assert_eq!(
        app.count("restores WHERE name = 'in-place'"),
        0,
        "it asks first"
    );
    journey.shot("restore-confirm").await;
    journey
        .browser
        .click(&format!("#restore-form-{completed} button.danger"))
        .await;
    journey
        .browser
        .wait_for_text("#backup-tab", "in-place", 10)
        .await;
    for _ in 0..300 {
        if app.count("restores WHERE name = 'in-place' AND phase = 'Completed'") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.count("restores WHERE name = 'in-place' AND phase = 'Completed'"),
        1,
        "the confirmed restore ran"
    );
    journey.visit("/").await;
    journey.shot("dashboard").await;
    journey.visit("/audit").await;
    journey.accessible("audit").await;

    assert_eq!(
        journey.checked_pages, 7,
        "axe-core ran on every checked page"
    );
    assert!(
        journey.seen.is_empty(),
        "console errors, CSP violations or accessibility faults:\n{}",
        journey.seen.join("\n")
    );
    journey.browser.close().await;
}

/// Fills and submits the add form of a backup credential.
async fn add_backup(browser: &Browser, endpoint: &str, name: &str, secret: &str) {
    browser.fill("#name", name).await;
    browser.fill("#access_key_id", S3_ACCESS_KEY).await;
    browser.fill("#secret_access_key", secret).await;
    browser.fill("#endpoint", endpoint).await;
    browser.click("form.form button.primary").await;
}

/// Opens the `details` element matching `details` (a row's actions menu) unless it is open.
async fn click_if_closed(browser: &Browser, details: &str) {
    let open = browser
        .script(&format!(
            "const d = document.querySelector({details:?}); return !!(d && d.open);"
        ))
        .await;
    if open == Value::Bool(false) {
        browser.click(&format!("{details} > summary")).await;
    }
}

/// Signs in through the page.
async fn sign_in(browser: &Browser, base: &str, email: &str, password: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("button.primary").await;
    for _ in 0..50 {
        if !browser.current_url().await.contains("/login") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sign-in as {email} failed");
}

#[actix_web::test]
async fn without_javascript_every_key_action_is_a_form_post_with_a_message() {
    let (app, s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let browser = driver.browser(false, DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app.address, &account.email, &account.password).await;

    // htmx is not running: the page has no htmx object.
    browser
        .goto(&format!("{}/credentials/backup/new", app.address))
        .await;
    browser
        .select("#organization_id", &organization.to_string())
        .await;
    browser.fill("#name", "Plain backups").await;
    browser.fill("#access_key_id", S3_ACCESS_KEY).await;
    browser.fill("#secret_access_key", GOOD).await;
    browser.fill("#endpoint", &s3.endpoint).await;
    browser.click("form.form button.primary").await;
    browser
        .wait_for_text("#messages", "Plain backups saved", 10)
        .await;
    assert!(
        browser.current_url().await.ends_with("/credentials/backup"),
        "303 back to the tab"
    );

    let id = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'Plain backups'",
    );
    for (action, message) in [
        ("lock", "is locked"),
        ("unlock", "is unlocked"),
        ("default", "is now the default"),
        ("verify", "verified"),
    ] {
        click_if_closed(&browser, &format!("#credential-{id} details.menu")).await;
        browser
            .click(&format!("#credential-{id} button[formaction$='/{action}']"))
            .await;
        browser.wait_for_text("#messages", message, 10).await;
    }
    browser
        .goto(&format!("{}/credentials/backup", app.address))
        .await;
    browser.fill("#q", "plain").await;
    browser.click("#filters button[type=submit]").await;
    browser.wait_for_text(".count", "1 credential", 5).await;
    assert!(
        browser.current_url().await.contains("q=plain"),
        "the search is a page load with ?q="
    );

    // Delete asks first, on a page of its own.
    click_if_closed(&browser, &format!("#credential-{id} details.menu")).await;
    browser.click(&format!("#credential-{id} .delete")).await;
    browser
        .wait_for_text("h1", "Delete Plain backups?", 5)
        .await;
    browser.click("form.confirm button.danger").await;
    browser
        .wait_for_text("#messages", "Plain backups is deleted", 5)
        .await;
    assert_eq!(app.count("credentials"), 0);
    let errors = errors(browser.console().await);
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}

#[actix_web::test]
async fn managers_and_users_see_only_what_they_may_use() {
    let (app, _s3, driver) = start().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(organization))
        .await;
    let user = partner
        .create_user("ulf@blue.example", "user", Some(organization))
        .await;

    let browser = driver.browser(true, DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app.address, &manager.email, &manager.password).await;
    browser
        .goto(&format!("{}/credentials/cloud", app.address))
        .await;
    let tabs = browser
        .script(
            "return [...document.querySelectorAll('nav.tabs a')].map(a => a.textContent.trim());",
        )
        .await;
    assert_eq!(
        tabs,
        serde_json::json!(["Cloud", "Backup", "Showback", "AI"]),
        "no Billing tab"
    );
    browser
        .goto(&format!("{}/credentials/cloud/new", app.address))
        .await;
    let providers = browser.script("return [...document.querySelectorAll('.provider-grid a')].map(a => a.textContent.trim());").await;
    let providers: Vec<String> = serde_json::from_value(providers).unwrap();
    assert!(
        !providers.contains(&"Proxmox".into())
            && !providers.contains(&"Tanzu".into())
            && providers.contains(&"AWS".into()),
        "{providers:?}"
    );

    // GCP's Folder ID and Billing account ID follow "Import an existing project".
    browser
        .goto(&format!(
            "{}/credentials/cloud/new?provider=gcp",
            app.address
        ))
        .await;
    let shown = "return ['folder_id', 'billing_account_id'].map(id => {                  const input = document.getElementById(id);                  return [input.closest('.field').hidden, input.disabled]; });";
    assert_eq!(
        browser.script(shown).await,
        serde_json::json!([[false, false], [false, false]])
    );
    browser.click("#import_project").await;
    assert_eq!(
        browser.script(shown).await,
        serde_json::json!([[true, true], [true, true]]),
        "hidden and not sent while importing"
    );
    browser.click("#import_project").await;
    assert_eq!(
        browser.script(shown).await,
        serde_json::json!([[false, false], [false, false]])
    );

    // A pasted Storj block fills the S3 fields in the page.
    browser
        .goto(&format!("{}/credentials/backup/new", app.address))
        .await;
    let filled = browser
        .script(
            "const box = document.getElementById('paste');
             box.value = 'Access Key ID: jw7key\\r\\nSecret Key   : jzsecret\\r\\nEndpoint     : https://gateway.storjshare.io\\r\\n';
             box.dispatchEvent(new Event('input', { bubbles: true }));
             return ['access_key_id', 'secret_access_key', 'endpoint']
               .map(id => document.getElementById(id).value)
               .concat([document.getElementById('paste-status').textContent]);",
        )
        .await;
    assert_eq!(
        filled,
        serde_json::json!([
            "jw7key",
            "jzsecret",
            "https://gateway.storjshare.io",
            "Filled S3 Access Key ID, S3 Secret Key, S3 Endpoint."
        ])
    );
    browser.close().await;

    let browser = driver.browser(true, PHONE.0, PHONE.1).await;
    sign_in(&browser, &app.address, &user.email, &user.password).await;
    let nav = browser
        .script(
            "return [...document.querySelectorAll('header nav a')].map(a => a.textContent.trim());",
        )
        .await;
    assert_eq!(
        nav,
        serde_json::json!(["Dashboard", "Projects", "API tokens"]),
        "no Credentials navigation for Users (their read-only tokens are theirs to make)"
    );
    browser.close().await;
}

#[actix_web::test]
async fn pages_are_light_and_search_fragments_small() {
    let (app, _s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    seed_backup_credentials(&app, organization, 120);
    let browser = driver.browser(true, DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app.address, &account.email, &account.password).await;

    // The first load of a tab, counting every asset as if the cache were cold (the sign-in
    // page has already cached them: their compressed size counts anyway).
    let fresh = driver.browser(true, DESKTOP.0, DESKTOP.1).await;
    sign_in(&fresh, &app.address, &account.email, &account.password).await;
    fresh
        .goto(&format!("{}/credentials/backup", app.address))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let transferred = fresh
        .script(
            "const nav = performance.getEntriesByType('navigation')[0];
             const assets = performance.getEntriesByType('resource');
             return [nav.transferSize, assets.reduce((sum, r) => sum + Math.max(r.transferSize, r.encodedBodySize), 0), assets.length];",
        )
        .await;
    let page = transferred[0].as_i64().unwrap() + transferred[1].as_i64().unwrap();
    println!(
        "first load of the backup tab (50 rows): {page} bytes transferred over {} requests",
        transferred[2]
    );
    assert!(page <= 100 * 1024, "first load transferred {page} bytes");

    browser
        .goto(&format!("{}/credentials/backup", app.address))
        .await;
    browser
        .script("performance.clearResourceTimings(); return true;")
        .await;
    browser.fill("#q", "bucket").await;
    browser.wait_for_text(".count", "120 credentials", 5).await;
    // Every credential holds "bucket": the count read the same before the search answered, so
    // wait for the fragment's own request (after htmx's 300 ms delay).
    let mut fragment = -1;
    for _ in 0..50 {
        fragment = browser
            .script("const r = performance.getEntriesByType('resource').filter(r => r.name.includes('q=bucket') && r.responseEnd > 0); return r.length ? r[r.length - 1].transferSize : -1;")
            .await
            .as_i64()
            .unwrap();
        if fragment >= 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("htmx search fragment of 50 rows: {fragment} bytes transferred");
    assert!(
        fragment > 0 && fragment <= 15 * 1024,
        "search fragment transferred {fragment} bytes"
    );
    fresh.close().await;
    browser.close().await;
}

/// Backup credentials straight through the model (no verification round-trips).
fn seed_backup_credentials(app: &TestApp, organization: i64, count: usize) {
    support::seed_credentials(
        app,
        organization,
        keyhold::credentials::provider::Kind::Backup,
        count,
        |n| {
            (
                format!("bucket-{n:03}"),
                vec![
                    ("access_key_id", format!("AKIA{n:012}")),
                    (
                        "endpoint",
                        "https://s3.eu-central-1.amazonaws.com".to_string(),
                    ),
                    ("region", "eu-central-1".to_string()),
                ],
                vec![("secret_access_key", GOOD.to_string())],
            )
        },
    );
}

/// Waits until the browser has left `path` (a sign-in step), failing after 10 s.
async fn left(browser: &Browser, path: &str) -> String {
    for _ in 0..100 {
        let url = browser.current_url().await;
        if !url.contains(path) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still on {path}");
}

/// Issue 20 in Chromium: two-step sign-in set up and used without JavaScript (the TOTP path,
/// the passkey button absent), then a passkey registered and used to sign in with WebDriver's
/// virtual authenticator. keyhold is opened at `localhost`: WebAuthn's relying party cannot be
/// an IP address, and `KEYHOLD_PUBLIC_URL` defaults to `http://localhost:<port>`.
#[actix_web::test]
async fn two_step_sign_in_without_javascript_and_with_a_passkey() {
    let app = spawn_app_with(&[("KEYHOLD_SCHEDULER", "false"), ("KEYHOLD_WORKERS", "2")]).await;
    let driver = Driver::start().await;
    let base = app.address.replace("127.0.0.1", "localhost");
    let (_partner, account) = app.partner().await;

    // Without JavaScript: set up from the secret shown as text, sign in again with a code.
    let plain = driver.browser(false, DESKTOP.0, DESKTOP.1).await;
    sign_in(&plain, &base, &account.email, &account.password).await;
    plain.goto(&format!("{base}/account/mfa")).await;
    let secret = plain.text("#totp-secret").await;
    assert_eq!(secret.len(), 32, "{secret}");
    plain.fill("#code", &totp_code(&secret, 0)).await;
    plain
        .click("form[action='/account/mfa'] button.primary")
        .await;
    plain.wait_for_text("#recovery-codes", "-", 5).await;
    let recovery = plain.text("#recovery-codes code").await;
    assert_eq!(recovery.len(), 11, "{recovery}");
    plain.goto(&format!("{base}/account/mfa")).await;
    assert_eq!(
        plain.count("#passkey-add:not([hidden])").await,
        0,
        "without JavaScript the passkey form stays hidden"
    );
    sign_out(&plain).await;
    sign_in_to_second_step(&plain, &base, &account.email, &account.password).await;
    plain.fill("#code", &totp_code(&secret, 1)).await;
    plain
        .click("form[action='/login/mfa'] button.primary")
        .await;
    let landed = left(&plain, "/login").await;
    assert_eq!(
        landed,
        format!("{base}/"),
        "signed in with a code, no JavaScript"
    );
    plain.close().await;

    // With JavaScript and a platform authenticator: a recovery code finishes this sign-in,
    // then a passkey is added on the two-step sign-in page.
    let browser = driver.browser(true, DESKTOP.0, DESKTOP.1).await;
    let authenticator = browser.add_virtual_authenticator().await;
    sign_in_to_second_step(&browser, &base, &account.email, &account.password).await;
    assert_eq!(
        browser.count("#passkey-sign-in").await,
        0,
        "no passkey yet, none offered"
    );
    browser.fill("#code", &recovery).await;
    browser
        .click("form[action='/login/mfa'] button.primary")
        .await;
    left(&browser, "/login").await;
    browser.goto(&format!("{base}/account/mfa")).await;
    browser.fill("#passkey-name", "Work laptop").await;
    browser.fill("#passkey-password", &account.password).await;
    browser.click("#passkey-add button[type=submit]").await;
    browser
        .wait_for_text("#messages", "The passkey was added", 10)
        .await;
    browser
        .wait_for_text(".passkey-list", "Work laptop", 5)
        .await;
    assert_eq!(
        browser
            .authenticator_credentials(&authenticator)
            .await
            .len(),
        1
    );
    assert_eq!(app.count("passkeys"), 1);
    for (suffix, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
        browser.set_window(width, height).await;
        browser
            .screenshot(&screenshots().join(format!("account-mfa-passkeys-{suffix}.png")))
            .await;
    }
    browser.set_window(DESKTOP.0, DESKTOP.1).await;

    // Signing in again: the passkey instead of the code.
    sign_out(&browser).await;
    sign_in_to_second_step(&browser, &base, &account.email, &account.password).await;
    browser
        .screenshot(&screenshots().join("login-mfa-passkey-desktop.png"))
        .await;
    browser.click("#passkey-sign-in button[type=submit]").await;
    let landed = left(&browser, "/login").await;
    assert_eq!(landed, format!("{base}/"), "signed in with the passkey");
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM passkeys WHERE last_used_at IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'session.sign_in' \
             AND fields @> ARRAY['passkey']"
        ),
        1
    );
    // At an address passkeys are not bound to, the page says where they work.
    sign_out(&browser).await;
    sign_in_to_second_step(&browser, &app.address, &account.email, &account.password).await;
    browser
        .wait_for_text(
            "#passkey-sign-in [data-passkey-error]",
            "Passkeys work at",
            5,
        )
        .await;
    let errors = errors(browser.console().await);
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}

/// Signs out through the page and waits until the sign-in page is shown (a navigation still
/// under way would otherwise overtake the next `goto`).
async fn sign_out(browser: &Browser) {
    browser.click("form[action='/logout'] button").await;
    for _ in 0..50 {
        if browser.current_url().await.contains("/login?signed_out") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("signing out did not reach the sign-in page");
}

/// Signs in with the password, up to the second step's page.
async fn sign_in_to_second_step(browser: &Browser, base: &str, email: &str, password: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("button.primary").await;
    for _ in 0..50 {
        if browser.current_url().await.ends_with("/login/mfa") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sign-in as {email} did not reach the second step");
}
