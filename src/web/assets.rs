//! Static files, compiled into the binary and served with a content-hash version in their URL,
//! so browsers may cache them for a year.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    version: String,
}

fn asset(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type,
        bytes,
        version: hex::encode(&Sha256::digest(bytes)[..6]),
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        asset(
            "htmx.min.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/htmx.min.js"),
        ),
        asset(
            "app.css",
            "text/css; charset=utf-8",
            include_bytes!("../../static/app.css"),
        ),
        asset(
            "app.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/app.js"),
        ),
        asset(
            "passkey.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/passkey.js"),
        ),
        asset(
            "favicon.svg",
            "image/svg+xml",
            include_bytes!("../../static/favicon.svg"),
        ),
    ]
});

/// `/static/<name>?v=<hash>` for a known file.
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => format!("/static/{}?v={}", asset.name, asset.version),
        None => format!("/static/{name}"),
    }
}

/// GET /static/{name}
pub async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("Not found");
    };
    let etag = format!("\"{}\"", asset.version);
    let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes());
    if matches {
        return HttpResponse::NotModified()
            .insert_header(cache)
            .insert_header((header::ETAG, etag))
            .finish();
    }
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header(cache)
        .insert_header((header::ETAG, etag))
        .body(asset.bytes)
}
