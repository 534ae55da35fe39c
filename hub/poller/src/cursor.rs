//! A pull job's cursor, saved as JSON in the state store's `hub_cursors`.

use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Everything the partner had up to this time (Unix ms) is on Kafka.
    pub watermark_ms: i64,
    /// A window started and not finished: resume it at `next_page`.
    #[serde(default)]
    pub window: Option<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
    pub next_page: u32,
    /// `paging = "cursor"`: the partner's token for `next_page` (absent on the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
