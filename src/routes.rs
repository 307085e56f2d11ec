//! The map of keyhold: every route, in one table that both registers the handlers and lists
//! them (`TABLE`) for the authorization tests, so a route cannot be added without being tested.
//! Probes (`probes`) are served without sessions or CSRF: they answer during a database outage
//! whatever cookie is sent; the JSON API (`api`, under `api::PREFIX`) is served without
//! sessions or CSRF too, for bearer tokens only; every other route is a page (`pages`).

use actix_web::web;

use crate::{
    accounts, api, audit, auth, backup, credentials, dashboard, notifications, ops, projects,
    tokens, web as pages,
};

macro_rules! routes {
    (
        probes: { $($probe:literal => { $($probe_method:ident : $probe_handler:path),+ $(,)? }),+ $(,)? },
        pages: { $($path:literal => { $($method:ident : $handler:path),+ $(,)? }),+ $(,)? },
        api: { $($api_path:literal => { $($api_method:ident : $api_handler:path),+ $(,)? }),+ $(,)? } $(,)?
    ) => {
        /// Every (method, path pattern) keyhold answers.
        pub const TABLE: &[(&str, &str)] = &[
            $($((stringify!($probe_method), $probe)),+,)+
            $($((stringify!($method), $path)),+,)+
            $($((stringify!($api_method), $api_path)),+),+
        ];

        /// Registers the probes (no session, no CSRF).
        pub fn probes(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($probe)$(.route(web::$probe_method().to($probe_handler)))+);)+
        }

        /// Registers every page.
        pub fn pages(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($path)$(.route(web::$method().to($handler)))+);)+
        }

        /// Registers the API's routes, inside a scope at `api::PREFIX`.
        pub fn api(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                web::resource(&$api_path[api::PREFIX.len()..])
                    $(.route(web::$api_method().to($api_handler)))+
            );)+
        }
    };
}

routes! {
probes: {
    "/healthz" => { get: ops::healthz },
    "/readyz" => { get: ops::readyz },
    "/metrics" => { get: ops::metrics },
},
pages: {
    "/static/{name}" => { get: pages::assets::serve },
    "/setup" => { get: auth::routes::setup_form, post: auth::routes::setup },
    "/login" => { get: auth::routes::login_form, post: auth::routes::login },
    "/login/mfa" => { get: auth::second_step::login_mfa_form, post: auth::second_step::login_mfa },
    "/login/mfa/passkey/options" => { post: auth::passkey_pages::sign_in_options },
    "/login/mfa/passkey" => { post: auth::passkey_pages::sign_in },
    "/account" => { get: auth::account::show },
    "/account/password" => { post: auth::account::change_password },
    "/account/mfa" => { get: auth::account::mfa_page, post: auth::account::mfa_enable },
    "/account/mfa/disable" => { post: auth::account::mfa_disable },
    "/account/passkeys/options" => { post: auth::passkey_pages::registration_options },
    "/account/passkeys" => { post: auth::passkey_pages::register },
    "/account/passkeys/{id}/delete" => { post: auth::passkey_pages::remove },
    "/logout" => { post: auth::routes::logout },
    "/" => { get: dashboard::show },
    "/organizations" => {
        get: accounts::routes::organizations,
        post: accounts::routes::create_organization,
    },
    "/organizations/mfa" => { post: auth::account::enforce },
    "/organizations/{id}" => { post: accounts::routes::rename_organization },
    "/organizations/{id}/edit" => { get: accounts::routes::edit_organization },
    "/organizations/{id}/delete" => {
        get: accounts::routes::confirm_delete_organization,
        post: accounts::routes::delete_organization,
    },
    "/users" => { get: accounts::routes::users, post: accounts::routes::create_user },
    "/users/{id}" => { post: accounts::routes::update_person },
    "/users/{id}/edit" => { get: accounts::routes::edit_person },
    "/users/{id}/password" => { post: accounts::routes::reset_password },
    "/users/{id}/delete" => {
        get: accounts::routes::confirm_delete_person,
        post: accounts::routes::delete_person,
    },
    "/users/{id}/{action}" => { post: accounts::routes::set_disabled },
    "/audit" => { get: audit::routes::list },
    "/audit.csv" => { get: audit::routes::export_csv },
    "/audit.ndjson" => { get: audit::routes::export_ndjson },
    "/notifications" => {
        get: notifications::routes::list,
        post: notifications::routes::create,
    },
    "/notifications/{id}" => {
        get: notifications::routes::show,
        post: notifications::routes::update,
    },
    "/notifications/{id}/{action}" => { post: notifications::routes::action },
    "/tokens" => { get: tokens::routes::list, post: tokens::routes::create },
    "/tokens/{id}/revoke" => { post: tokens::routes::revoke },
    "/credentials" => { get: credentials::routes::index },
    "/credentials/{kind}" => {
        get: credentials::routes::list,
        post: credentials::routes::create,
    },
    "/credentials/{kind}/new" => { get: credentials::routes::new },
    "/credentials/{kind}/verify" => { post: credentials::routes::verify_form },
    "/credentials/{kind}/{id}" => {
        get: credentials::routes::show,
        post: credentials::routes::update,
    },
    "/credentials/{kind}/{id}/edit" => { get: credentials::routes::edit },
    "/credentials/{kind}/{id}/{action}" => {
        get: credentials::routes::confirm,
        post: credentials::routes::action,
    },
    "/projects" => { get: projects::routes::list, post: projects::routes::create },
    "/projects/new" => { get: projects::routes::new },
    "/projects/{id}" => { get: backup::views::show, post: projects::routes::update },
    "/projects/{id}/edit" => { get: projects::routes::edit },
    "/projects/{id}/delete" => {
        get: projects::routes::confirm_delete,
        post: projects::routes::delete,
    },
    "/projects/{id}/backup/enable" => { post: backup::routes::enable },
    "/projects/{id}/backup/disable" => { post: backup::routes::disable },
    "/projects/{id}/backup/encryption" => { post: backup::routes::encryption },
    "/projects/{id}/backup/encryption/generate" => { post: backup::routes::generate_key },
    "/projects/{id}/policies" => { post: backup::routes::create_policy },
    "/projects/{id}/policies/preview" => { get: backup::routes::preview, post: backup::routes::preview_form },
    "/projects/{id}/policies/{policy_id}/{action}" => { post: backup::routes::policy_action },
    "/projects/{id}/backups/{backup_id}" => { get: backup::routes::backup_detail },
    "/projects/{id}/backups/{backup_id}/{action}" => {
        get: backup::routes::backup_page,
        post: backup::routes::backup_action,
    },
},
api: {
    "/api/v1/openapi.json" => { get: api::openapi::document },
    "/api/v1/audit" => { get: api::audit::list },
    "/api/v1/credentials/{kind}" => {
        get: api::credentials::list,
        post: api::credentials::create,
    },
    "/api/v1/credentials/{kind}/verify" => { post: api::credentials::verify_values },
    "/api/v1/credentials/{kind}/{id}" => {
        get: api::credentials::show,
        patch: api::credentials::update,
        delete: api::credentials::delete,
    },
    "/api/v1/credentials/{kind}/{id}/{action}" => { post: api::credentials::action },
    "/api/v1/projects" => { get: api::projects::list, post: api::projects::create },
    "/api/v1/projects/{id}" => {
        get: api::projects::show,
        patch: api::projects::update,
        delete: api::projects::delete,
    },
    "/api/v1/projects/{id}/backup/enable" => { post: api::projects::enable },
    "/api/v1/projects/{id}/backup/disable" => { post: api::projects::disable },
    "/api/v1/projects/{id}/policies" => {
        get: api::projects::policies,
        post: api::projects::create_policy,
    },
    "/api/v1/projects/{id}/policies/{policy_id}" => { delete: api::projects::delete_policy },
    "/api/v1/projects/{id}/policies/{policy_id}/run" => { post: api::projects::run_policy },
    "/api/v1/projects/{id}/backups" => { get: api::projects::backups },
    "/api/v1/projects/{id}/backups/{backup_id}" => {
        get: api::projects::backup,
        delete: api::projects::delete_backup,
    },
    "/api/v1/projects/{id}/backups/{backup_id}/restore" => { post: api::projects::restore },
    "/api/v1/projects/{id}/backups/{backup_id}/verify" => {
        post: api::projects::verify_backup,
    },
    "/api/v1/projects/{id}/restores" => { get: api::projects::restores },
},
}
