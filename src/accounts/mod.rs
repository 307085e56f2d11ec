//! Partner accounts, organizations and people: the model and the Partner-only pages that
//! manage them (`/organizations`, `/users`).

pub mod model;
pub mod routes;
