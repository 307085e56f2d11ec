//! The benchmark baseline: the TechEmpower "Fortunes" shape on keyhold's own stack (actix-web,
//! diesel over r2d2, askama): read 12 rows, add one, sort, render. `scripts/bench` measures
//! keyhold as a ratio to it. Run: `cargo run --release --example fortunes -- <database-url> <port>`.

use actix_web::{App, HttpResponse, HttpServer, web};
use askama::Template;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{Integer, Text};

#[derive(QueryableByName)]
struct Fortune {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    message: String,
}

#[derive(Template)]
#[template(path = "bench/fortunes.html")]
struct Fortunes {
    fortunes: Vec<Fortune>,
}

type DbPool = Pool<ConnectionManager<PgConnection>>;

async fn fortunes(pool: web::Data<DbPool>) -> HttpResponse {
    let pool = pool.get_ref().clone();
    let rows = web::block(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT id, message FROM fortune")
            .load::<Fortune>(&mut conn)
            .map_err(|e| e.to_string())
    })
    .await;
    match rows {
        Ok(Ok(mut fortunes)) => {
            fortunes.push(Fortune {
                id: 0,
                message: "Additional fortune added at request time.".into(),
            });
            fortunes.sort_by(|a, b| a.message.cmp(&b.message));
            match (Fortunes { fortunes }).render() {
                Ok(body) => HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(body),
                Err(_) => HttpResponse::InternalServerError().finish(),
            }
        }
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/keyhold_bench".into());
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8090);
    let pool = Pool::builder()
        .max_size(10)
        .build(ConnectionManager::<PgConnection>::new(url))
        .expect("the benchmark database answers");
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(pool.clone()))
            .route("/fortunes", web::get().to(fortunes))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
