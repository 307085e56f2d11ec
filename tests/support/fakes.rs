//! Real servers for verification tests: an S3 server in-process (s3s + s3s-fs, with signature
//! checking), a real Prometheus with basic auth, and a local HTTP server that follows the
//! documented contract of the SaaS APIs that cannot run here (OpenAI, Keystone, Proxmox,
//! vSphere, Tanzu, Zededa, Azure AD, AWS STS, Kubernetes).

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::ListBucketsInput;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Result, s3_error};

/// Keys the fake servers accept.
pub const GOOD: &str = "good-secret-value";
pub const S3_ACCESS_KEY: &str = "AKIAKEYHOLDTEST01";
/// An S3 key whose signature is valid but which may not list buckets.
pub const S3_LIMITED_KEY: &str = "AKIAKEYHOLDLIMITED";
pub const AWS_ACCESS_KEY: &str = "AKIAKEYHOLDAWS0001";

/// A string that must never appear in anything keyhold shows (see the secret crawl test).
pub const MARKER: &str = "Zq7MARKx91";

/// A secret the fakes accept that carries the marker and the field's name.
pub fn marked(field: &str) -> String {
    format!("{GOOD}{MARKER}{field}")
}

/// The fakes accept the good secret and marked variants of it.
fn accepted(secret: Option<String>) -> bool {
    secret.is_some_and(|secret| secret.starts_with(GOOD))
}

/// An S3 key registered with a marked secret.
pub const S3_MARKED_KEY: &str = "AKIAKEYHOLDMARKED";

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

/// An S3 server over a temporary directory, checking signatures.
pub struct S3Server {
    pub endpoint: String,
    /// While set, every request is answered 500 InternalError (storage failing mid-run).
    pub failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests answered so far; from the `stall_from`-th on, none is answered (S3 died).
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub stall_from: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// While above zero, object downloads come in 1 KiB chunks this many milliseconds apart
    /// (a slow link: steady, but slower than any one deadline for the whole body).
    pub chunk_delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// While set, every request is refused as AWS refuses a deleted key (403
    /// InvalidAccessKeyId).
    pub revoked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Where the objects live (kept for the server's lifetime; tests may look inside).
    #[allow(dead_code)]
    pub root: tempfile::TempDir,
}

struct DenyListingToLimitedKey;

#[async_trait::async_trait]
impl s3s::access::S3Access for DenyListingToLimitedKey {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "anonymous access")),
        }
    }

    async fn list_buckets(&self, req: &mut S3Request<ListBucketsInput>) -> S3Result<()> {
        match &req.credentials {
            Some(credentials) if credentials.access_key == S3_LIMITED_KEY => Err(s3_error!(
                AccessDenied,
                "listing is not allowed for this key"
            )),
            _ => Ok(()),
        }
    }
}

/// Starts the S3 server on a loopback port.
pub async fn start_s3() -> S3Server {
    let root = tempfile::tempdir().expect("temp dir");
    let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
    let mut builder = S3ServiceBuilder::new(fs);
    let mut auth = SimpleAuth::new();
    auth.register(S3_ACCESS_KEY.into(), GOOD.into());
    auth.register(S3_LIMITED_KEY.into(), GOOD.into());
    auth.register(S3_MARKED_KEY.into(), marked("secret_access_key").into());
    builder.set_auth(auth);
    builder.set_access(DenyListingToLimitedKey);
    let service = builder.build();
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let flag = failing.clone();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stall_from = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let (counted, stall) = (requests.clone(), stall_from.clone());
    let chunk_delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (delay, refused) = (chunk_delay_ms.clone(), revoked.clone());
    actix_web::rt::spawn(async move {
        let server = ConnBuilder::new(TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let (service, flag) = (service.clone(), flag.clone());
            let (counted, stall) = (counted.clone(), stall.clone());
            let (delay, refused) = (delay.clone(), refused.clone());
            let handler = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let (service, fail) = (
                        service.clone(),
                        flag.load(std::sync::atomic::Ordering::SeqCst),
                    );
                    let delay = delay.load(std::sync::atomic::Ordering::SeqCst);
                    let revoked = refused.load(std::sync::atomic::Ordering::SeqCst);
                    let download = request.method() == hyper::Method::GET
                        && request.uri().query().is_none()
                        && request.uri().path().trim_matches('/').contains('/');
                    let number = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let stalled = number >= stall.load(std::sync::atomic::Ordering::SeqCst);
                    async move {
                        if stalled {
                            std::future::pending::<()>().await;
                        }
                        if fail {
                            let mut response = hyper::Response::new(s3s::Body::from(
                            "<Error><Code>InternalError</Code><Message>injected</Message></Error>".to_string(),
                        ));
                            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                            return Ok::<_, s3s::HttpError>(response);
                        }
                        if revoked {
                            let mut response = hyper::Response::new(s3s::Body::from(
                                "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>".to_string(),
                            ));
                            *response.status_mut() = hyper::StatusCode::FORBIDDEN;
                            return Ok(response);
                        }
                        let response = hyper::service::Service::call(&service, request).await?;
                        if !download || delay == 0 || !response.status().is_success() {
                            return Ok(response);
                        }
                        Ok(slowed(response, Duration::from_millis(delay)).await)
                    }
                },
            );
            let connection = server
                .serve_connection(TokioIo::new(socket), handler)
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    S3Server {
        endpoint,
        failing,
        requests,
        stall_from,
        chunk_delay_ms,
        revoked,
        root,
    }
}

/// The same answer, its body sent in 1 KiB chunks `delay` apart.
async fn slowed(
    response: hyper::Response<s3s::Body>,
    delay: Duration,
) -> hyper::Response<s3s::Body> {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let chunks: Vec<hyper::body::Bytes> = bytes.chunks(1024).map(|c| c.to_vec().into()).collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut chunks| async move {
        let chunk = chunks.next()?;
        tokio::time::sleep(delay).await;
        Some((
            Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk)),
            chunks,
        ))
    });
    hyper::Response::from_parts(
        parts,
        s3s::Body::http_body_unsync(http_body_util::StreamBody::new(stream)),
    )
}

/// A real Prometheus (Debian package) with one basic-auth user, stopped when dropped.
pub struct Prometheus {
    pub url: String,
    pub user: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus, or fails the test when the binary is missing (scripts/test installs it).
pub async fn start_prometheus() -> Prometheus {
    let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("prometheus is installed (bash scripts/test installs the Debian package)");
    let dir = tempfile::tempdir().expect("temp dir");
    let hash = bcrypt::hash(GOOD, 4).expect("bcrypt");
    let marked_hash = bcrypt::hash(marked("password"), 4).expect("bcrypt");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  keyhold: {hash}\n  marked: {marked_hash}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let port = closed_port();
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--web.config.file={}",
            dir.path().join("web.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let prometheus = Prometheus {
        url: format!("http://127.0.0.1:{port}"),
        user: "keyhold".into(),
        child,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let ready = client
            .get(format!("{}/-/ready", prometheus.url))
            .basic_auth("keyhold", Some(GOOD))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return prometheus;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prometheus did not become ready at {}", prometheus.url);
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

fn basic_password(req: &HttpRequest) -> Option<String> {
    let encoded = req
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?
        .to_string();
    let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_string())
}

fn status(ok: bool, good: u16, bad: u16) -> HttpResponse {
    let code = if ok { good } else { bad };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).body("{}")
}

/// The SaaS fakes, on one loopback port.
pub async fn start_cloud_fake() -> String {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/v1/models",
                web::get()
                    .to(|req: HttpRequest| async move { status(accepted(bearer(&req)), 200, 401) }),
            )
            .route(
                "/v3/auth/tokens",
                web::post().to(|body: web::Json<serde_json::Value>| async move {
                    let identity = &body["auth"]["identity"];
                    let secret = identity["password"]["user"]["password"]
                        .as_str()
                        .or(identity["application_credential"]["secret"].as_str());
                    status(accepted(secret.map(str::to_string)), 201, 401)
                }),
            )
            .route(
                "/api2/json/version",
                web::get().to(|req: HttpRequest| async move {
                    let header = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    status(
                        header.starts_with("PVEAPIToken=") && header.contains(&format!("={GOOD}")),
                        200,
                        401,
                    )
                }),
            )
            .route(
                "/api/session",
                web::post().to(|req: HttpRequest| async move {
                    status(accepted(basic_password(&req)), 201, 401)
                }),
            )
            .route(
                "/zededa",
                web::get()
                    .to(|req: HttpRequest| async move { status(accepted(bearer(&req)), 200, 401) }),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                web::post().to(
                    |form: web::Form<std::collections::HashMap<String, String>>| async move {
                        let ok = accepted(form.get("client_secret").cloned())
                            && form.get("grant_type").map(String::as_str)
                                == Some("client_credentials");
                        status(ok, 200, 401)
                    },
                ),
            )
            .route(
                "/sts/",
                web::post().to(|req: HttpRequest, body: String| async move {
                    status(sts_signature_valid(&req, &body), 200, 403)
                }),
            )
            .route(
                "/k8s/version",
                web::get().to(|| async { status(true, 200, 200) }),
            )
            .route(
                "/redirect/v1/models",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "http://169.254.169.254/latest/meta-data/"))
                        .finish()
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    address
}

/// Recomputes the SigV4 signature with the secret this fake knows.
fn sts_signature_valid(req: &HttpRequest, body: &str) -> bool {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let authorization = header("authorization");
    if !authorization.contains(&format!("Credential={AWS_ACCESS_KEY}/")) {
        return false;
    }
    let Ok(date) = chrono::NaiveDateTime::parse_from_str(&header("x-amz-date"), "%Y%m%dT%H%M%SZ")
    else {
        return false;
    };
    let url = url::Url::parse(&format!("http://{}/sts/", header("host"))).unwrap();
    [GOOD.to_string(), marked("secret_access_key")]
        .iter()
        .any(|secret| {
            let expected =
                keyhold::credentials::verify::sigv4::signature(&url, secret, date.and_utc(), body);
            authorization.ends_with(&format!("Signature={expected}"))
        })
}
