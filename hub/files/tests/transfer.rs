//! Receiving and sending files the three ways partners use: multipart/form-data, base64 in a
//! field, and a URL; against partner stand-ins served on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use hub_files::transfer::{
    fetch_url, receive_base64, receive_multipart, send_base64, send_multipart, FetchPolicy,
};
use hub_files::{FileErrorCode, FileId, FileStore, Limits, PutOptions};
use support::*;

fn store(dir: &std::path::Path, max: u64) -> FileStore {
    FileStore::local(
        dir,
        Some(cipher("k1", &[])),
        Limits {
            max_bytes: max,
            ..Limits::default()
        },
    )
    .unwrap()
}

fn multipart_body(boundary: &str, part_type: &str, file: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"notice_no\"\r\n\r\n3100000001\r\n").as_bytes());
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notice.pdf\"\r\nContent-Type: {part_type}\r\n\r\n").as_bytes());
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

fn body_stream(
    body: Vec<u8>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(3000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn multipart_uploads_are_streamed_checked_and_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1024 * 1024);
    let pdf = pdf(200_000, 1);
    let ct = "multipart/form-data; boundary=----hubBoundary7MA4YWxk";
    let got = receive_multipart(
        &s,
        ct,
        body_stream(multipart_body(
            "----hubBoundary7MA4YWxk",
            "application/pdf",
            &pdf,
        )),
        "file",
        &PutOptions::default().personal(true),
    )
    .await
    .unwrap();
    assert_eq!(got.file.id, FileId::of(&pdf));
    assert!(got.file.encrypted);
    assert_eq!(got.file_name.as_deref(), Some("notice.pdf"));
    assert_eq!(
        got.fields.get("notice_no").map(String::as_str),
        Some("3100000001")
    );

    let mismatch = receive_multipart(
        &s,
        ct,
        body_stream(multipart_body("----hubBoundary7MA4YWxk", "image/png", &pdf)),
        "file",
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(mismatch.code, FileErrorCode::TypeMismatch);
    let big = receive_multipart(
        &s,
        ct,
        body_stream(multipart_body(
            "----hubBoundary7MA4YWxk",
            "application/pdf",
            &support::pdf(2 * 1024 * 1024, 2),
        )),
        "file",
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(big.code, FileErrorCode::TooLarge, "{big}");
    let missing = receive_multipart(
        &s,
        ct,
        body_stream(multipart_body(
            "----hubBoundary7MA4YWxk",
            "application/pdf",
            &pdf,
        )),
        "attachment",
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code, FileErrorCode::MultipartInvalid);
    let no_boundary = receive_multipart(
        &s,
        "multipart/form-data",
        body_stream(Vec::new()),
        "file",
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(no_boundary.code, FileErrorCode::MultipartInvalid);
    // Cut off in the middle of the file part.
    let mut cut = multipart_body(
        "----hubBoundary7MA4YWxk",
        "application/pdf",
        &support::pdf(300_000, 3),
    );
    cut.truncate(150_000);
    let e = receive_multipart(&s, ct, body_stream(cut), "file", &PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code,
            FileErrorCode::MultipartInvalid | FileErrorCode::UploadIncomplete
        ),
        "{e}"
    );
    assert_eq!(
        s.head(&FileId::of(&support::pdf(300_000, 3)))
            .await
            .unwrap_err()
            .code,
        FileErrorCode::NotFound
    );
    assert!(listed(&s, "tmp").await.is_empty());
}

#[tokio::test]
async fn base64_fields_decode_with_limits() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 300_000);
    let pdf = pdf(200_000, 4);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    // Wrapped at 76 as XML senders do.
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let meta = receive_base64(&s, &wrapped, &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(meta.id, FileId::of(&pdf));
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png())
    );
    assert_eq!(
        receive_base64(&s, &url, &PutOptions::default())
            .await
            .unwrap()
            .media_type,
        "image/png"
    );
    let wrong = format!("data:image/png;base64,{b64}");
    assert_eq!(
        receive_base64(&s, &wrong, &PutOptions::default())
            .await
            .unwrap_err()
            .code,
        FileErrorCode::TypeMismatch
    );
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&pdf);
    assert_eq!(
        receive_base64(&s, &urlsafe, &PutOptions::default())
            .await
            .unwrap()
            .id,
        meta.id
    );
    // Refused before decoding: larger than the limit.
    let huge = base64::engine::general_purpose::STANDARD.encode(support::pdf(400_000, 5));
    assert_eq!(
        receive_base64(&s, &huge, &PutOptions::default())
            .await
            .unwrap_err()
            .code,
        FileErrorCode::TooLarge
    );
    // A bad character deep inside: nothing stored.
    let mut bad = base64::engine::general_purpose::STANDARD.encode(support::pdf(150_000, 6));
    bad.replace_range(120_000..120_001, "*");
    assert_eq!(
        receive_base64(&s, &bad, &PutOptions::default())
            .await
            .unwrap_err()
            .code,
        FileErrorCode::Base64Invalid
    );
    assert_eq!(
        s.head(&FileId::of(&support::pdf(150_000, 6)))
            .await
            .unwrap_err()
            .code,
        FileErrorCode::NotFound
    );
    // Sending: the same bytes back as base64.
    let out = send_base64(&s, &meta.id, 1024 * 1024).await.unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(out)
            .unwrap(),
        pdf
    );
    assert_eq!(
        send_base64(&s, &meta.id, 1000).await.unwrap_err().code,
        FileErrorCode::TooLarge
    );
}

/// A partner stand-in: serves files, redirects, stalls; receives multipart uploads into its
/// own store and answers with the SM3 it computed.
async fn partner(received: FileStore) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let other_host = format!("http://localhost:{}/notice.pdf", addr.port());
    let app = Router::new()
        .route(
            "/notice.pdf",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], pdf(100_000, 7)) }),
        )
        .route(
            "/moved",
            get(|| async { Redirect::temporary("/notice.pdf") }),
        )
        .route(
            "/elsewhere",
            get(move || {
                let to = other_host.clone();
                async move { Redirect::temporary(&to) }
            }),
        )
        .route(
            "/big.pdf",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], pdf(600_000, 8)) }),
        )
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow.pdf",
            get(|| async {
                let s =
                    futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(pdf(10_000, 9)))])
                        .chain(futures::stream::pending());
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/pdf")
                    .body(Body::from_stream(s))
                    .unwrap()
            }),
        )
        .route(
            "/upload",
            post(
                |State(store): State<Arc<FileStore>>, req: Request| async move {
                    let ct = req
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string();
                    let body = req.into_body().into_data_stream();
                    match receive_multipart(&store, &ct, body, "file", &PutOptions::default()).await
                    {
                        Ok(r) => (
                            StatusCode::OK,
                            format!("{} {}", r.file.id, r.fields["notice_no"]),
                        )
                            .into_response(),
                        Err(e) => (
                            StatusCode::from_u16(e.code.status()).unwrap(),
                            e.code().to_string(),
                        )
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(Arc::new(received));
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{}", addr.port()), task)
}

#[tokio::test]
async fn files_are_fetched_from_urls_within_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 500_000);
    let theirs = tempfile::tempdir().unwrap();
    let (base, _server) = partner(store(theirs.path(), 500_000)).await;
    let policy = FetchPolicy {
        allow_loopback_http: true,
        timeout: Duration::from_secs(3),
        ..FetchPolicy::default()
    };
    let meta = fetch_url(
        &s,
        &format!("{base}/notice.pdf"),
        &policy,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(meta.id, FileId::of(&pdf(100_000, 7)));
    assert_eq!(
        fetch_url(
            &s,
            &format!("{base}/moved"),
            &policy,
            &PutOptions::default()
        )
        .await
        .unwrap()
        .id,
        meta.id
    );
    let e = fetch_url(
        &s,
        &format!("{base}/elsewhere"),
        &policy,
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, FileErrorCode::UrlRefused, "{e}");
    let e = fetch_url(
        &s,
        &format!("{base}/big.pdf"),
        &policy,
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TooLarge, "{e}");
    let e = fetch_url(&s, &format!("{base}/gone"), &policy, &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::FetchFailed, "{e}");
    let e = fetch_url(
        &s,
        &format!("{base}/slow.pdf"),
        &policy,
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, FileErrorCode::FetchFailed, "{e}");
    assert_eq!(
        s.head(&FileId::of(&pdf(10_000, 9))).await.unwrap_err().code,
        FileErrorCode::NotFound
    );
    // Without the loopback opt-in, plain http is refused before any connection.
    let e = fetch_url(
        &s,
        &format!("{base}/notice.pdf"),
        &FetchPolicy::default(),
        &PutOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, FileErrorCode::UrlRefused);
}

#[tokio::test]
async fn a_stored_file_is_sent_as_multipart_and_arrives_with_the_same_sm3() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 30 * 1024 * 1024);
    let theirs = tempfile::tempdir().unwrap();
    let (base, _server) = partner(store(theirs.path(), 30 * 1024 * 1024)).await;
    let data = pdf(12 * 1024 * 1024, 10);
    let meta = s
        .put_bytes(Bytes::from(data), &PutOptions::default().personal(true))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let resp = send_multipart(
        &client,
        &format!("{base}/upload"),
        &s,
        &meta.id,
        "file",
        "notice.pdf",
        &[("notice_no", "3100000001")],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        format!("{} 3100000001", meta.id)
    );
    // A partner that is not there.
    let e = send_multipart(
        &client,
        "http://127.0.0.1:9/upload",
        &s,
        &meta.id,
        "file",
        "n.pdf",
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, FileErrorCode::SendFailed);
}
