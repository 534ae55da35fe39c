//! The read-only, Confluent-compatible schema registry API over the hub's contracts, served on
//! the admin listener under `/registry` (give `http://<admin>/registry` to any Confluent client
//! or serializer as its registry URL).
//!
//! Implemented: `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{v}`,
//! `GET /subjects/{s}/versions/{v}/schema`, `POST /subjects/{s}` (look a schema up),
//! `GET /schemas/ids/{id}`, `GET /schemas/ids/{id}/versions`, `GET /config`,
//! `GET /config/{s}`, `POST /compatibility/subjects/{s}/versions/{v}`. Registering
//! (`POST /subjects/{s}/versions`) and deleting answer 405: contracts change through the
//! `contracts/` folder and review, not through the API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use hub_contracts::{Registry, RegistryError, VersionRef};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(read_only))
        .route(
            "/subjects/{subject}/versions",
            get(versions).post(read_only),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(read_only),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/config", get(global_config).put(read_only))
        .route("/config/{subject}", get(subject_config).put(read_only))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .with_state(registry)
}

fn ok(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], Json(body)).into_response()
}

fn error(e: RegistryError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        Json(json!({ "error_code": e.error_code(), "message": e.to_string() })),
    )
        .into_response()
}

async fn read_only() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        Json(json!({
            "error_code": 40501,
            "message": "此注册中心只读：契约通过 contracts/ 目录评审变更 / this registry is read-only: contracts change through the contracts/ folder and review"
        })),
    )
        .into_response()
}

fn version_ref(v: &str) -> Result<VersionRef, RegistryError> {
    VersionRef::parse(v).ok_or(RegistryError::InvalidVersion)
}

async fn subjects(State(r): State<Arc<Registry>>) -> Response {
    ok(json!(r.subjects().collect::<Vec<_>>()))
}

async fn versions(State(r): State<Arc<Registry>>, Path(subject): Path<String>) -> Response {
    match r.versions(&subject) {
        Some(v) => ok(json!(v)),
        None => error(RegistryError::SubjectNotFound),
    }
}

fn find(r: &Registry, subject: &str, version: &str) -> Result<Value, RegistryError> {
    let which = version_ref(version)?;
    if r.versions(subject).is_none() {
        return Err(RegistryError::SubjectNotFound);
    }
    let v = r
        .version(subject, which)
        .ok_or(RegistryError::VersionNotFound)?;
    Ok(json!({ "subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema }))
}

async fn version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    find(&r, &subject, &version).map_or_else(error, ok)
}

async fn raw_schema(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match find(&r, &subject, &version) {
        Ok(v) => {
            let schema: Value =
                serde_json::from_str(v["schema"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            ok(schema)
        }
        Err(e) => error(e),
    }
}

fn parse_id(id: &str) -> Result<u32, RegistryError> {
    id.parse().map_err(|_| RegistryError::SchemaNotFound)
}

async fn schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| r.by_id(id).ok_or(RegistryError::SchemaNotFound)) {
        Ok(v) => ok(json!({ "schema": v.schema })),
        Err(e) => error(e),
    }
}

async fn versions_of_id(State(r): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| r.by_id(id).ok_or(RegistryError::SchemaNotFound)) {
        Ok(v) => ok(json!([{ "subject": v.subject, "version": v.version }])),
        Err(e) => error(e),
    }
}

async fn global_config() -> Response {
    ok(json!({ "compatibilityLevel": "BACKWARD" }))
}

async fn subject_config(State(r): State<Arc<Registry>>, Path(subject): Path<String>) -> Response {
    match r.mode(&subject) {
        Some(m) => ok(json!({ "compatibilityLevel": m.as_str() })),
        None => error(RegistryError::SubjectNotFound),
    }
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

fn avro_only(body: &SchemaBody) -> Result<(), RegistryError> {
    match body.schema_type.as_deref() {
        None | Some("AVRO") => Ok(()),
        Some(other) => Err(RegistryError::InvalidSchema(format!(
            "only AVRO contracts are served, not {other}"
        ))),
    }
}

/// Is this exact schema registered under the subject? (Clients call this before producing.)
async fn lookup(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> Response {
    let found = avro_only(&body).and_then(|()| {
        let candidate = apache_avro::Schema::parse_str(&body.schema)
            .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        let versions = r.versions(&subject).ok_or(RegistryError::SubjectNotFound)?;
        let id = hub_contracts::schema_id(&candidate);
        versions
            .into_iter()
            .filter_map(|n| r.version(&subject, VersionRef::Number(n)))
            .find(|v| v.id == id)
            .map(|v| json!({ "subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema }))
            .ok_or(RegistryError::SchemaNotFound)
    });
    found.map_or_else(error, ok)
}

async fn compatibility(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> Response {
    let result = avro_only(&body)
        .and_then(|()| version_ref(&version))
        .and_then(|which| r.check(&subject, which, &body.schema));
    match result {
        Ok(messages) => ok(json!({ "is_compatible": messages.is_empty(), "messages": messages })),
        Err(e) => error(e),
    }
}
