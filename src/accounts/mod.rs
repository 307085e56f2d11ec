//! Partner accounts, organizations and people: the model, the Partner's changes to them
//! (`service`: rename and delete organizations; a person's role, password and deletion) and
//! the Partner-only pages that manage them (`/organizations`, `/users`).

pub mod model;
pub mod routes;
pub mod service;
