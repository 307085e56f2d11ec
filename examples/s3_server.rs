//! A standalone S3 server (s3s + s3s-fs, with signature checking) for trying keyhold by hand
//! and for the backup measurements in the README: `cargo run --example s3_server -- <dir> <port>`.
//! Access key `keyhold`, secret `keyhold-secret`.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "/tmp/keyhold-s3".into());
    let port: u16 = args.next().map_or(Ok(9000), |p| p.parse())?;
    std::fs::create_dir_all(&root)?;
    let fs = s3s_fs::FileSystem::new(&root)
        .map_err(|error| format!("cannot serve {root}: {error:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single("keyhold", "keyhold-secret"));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("S3 at http://127.0.0.1:{port} over {root} (key keyhold / keyhold-secret)");
    let server = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        let connection = server
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
