//! A delivery's file (`file = { … }` on a `[[delivery]]`, `docs/files.md`) put into the body the
//! outbound mapping rendered: a JSON body through `hub_files::wiring::outbound_body` (base64, a
//! download link, or the body made multipart); an XML or form body's element or field holding
//! the file id replaced in place (`hub_mapping::fields`), in the body's charset, by the file's
//! base64 or a download link.

use hub_files::transfer::DownloadLinks;
use hub_files::wiring::{self, OutboundFile, SendStyle};
use hub_files::{FileError, FileErrorCode, FileStore};
use hub_mapping::{Format, Mapping};
use hub_pipeline::Rendered;

/// The rendered body with the file put in.
pub(crate) async fn put_file(
    store: &FileStore,
    links: Option<&DownloadLinks>,
    mapping: &Mapping,
    spec: &OutboundFile,
    rendered: Rendered,
) -> Result<Rendered, FileError> {
    if mapping.format == Format::Json || spec.style == SendStyle::Multipart {
        let (body, content_type) =
            wiring::outbound_body(store, spec, links, &rendered.body).await?;
        return Ok(Rendered { body, content_type });
    }
    let unusable = |e: hub_mapping::fields::FieldError| {
        FileError::new(
            FileErrorCode::IdInvalid,
            format!("no file id at {}: {e}", spec.pointer),
        )
    };
    let mut doc = mapping.text_body(&rendered.body).map_err(unusable)?;
    let id = doc.text(&spec.pointer).map_err(unusable)?;
    let text = wiring::outbound_text(store, spec, links, id.as_deref()).await?;
    doc.set_text(&spec.pointer, &text).map_err(unusable)?;
    Ok(Rendered {
        body: doc.into_bytes().map_err(unusable)?,
        content_type: rendered.content_type,
    })
}
