//! The map of keyhold: every route, in one table that both registers the handlers and lists
//! them (`TABLE`) for the authorization tests, so a route cannot be added without being tested.
//! Probes (`probes`) are served without sessions or CSRF: they answer during a database outage
//! whatever cookie is sent; every other route is a page (`pages`).

use actix_web::web;

use crate::{accounts, audit, auth, backup, credentials, dashboard, ops, projects, web as pages};

macro_rules! routes {
    (
        probes: { $($probe:literal => { $($probe_method:ident : $probe_handler:path),+ $(,)? }),+ $(,)? },
        pages: { $($path:literal => { $($method:ident : $handler:path),+ $(,)? }),+ $(,)? } $(,)?
    ) => {
        /// Every (method, path pattern) keyhold answers.
        pub const TABLE: &[(&str, &str)] = &[
            $($((stringify!($probe_method), $probe)),+,)+
            $($((stringify!($method), $path)),+),+
        ];

        /// Registers the probes (no session, no CSRF).
        pub fn probes(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($probe)$(.route(web::$probe_method().to($probe_handler)))+);)+
        }

        /// Registers every page.
        pub fn pages(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($path)$(.route(web::$method().to($handler)))+);)+
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
    "/logout" => { post: auth::routes::logout },
    "/" => { get: dashboard::show },
    "/organizations" => {
        get: accounts::routes::organizations,
        post: accounts::routes::create_organization,
    },
    "/users" => { get: accounts::routes::users, post: accounts::routes::create_user },
    "/users/{id}/{action}" => { post: accounts::routes::set_disabled },
    "/audit" => { get: audit::routes::list },
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
    "/projects/{id}" => { get: projects::routes::show },
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
}
