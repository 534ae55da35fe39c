//! A partner's business codes and answer envelope: the one thing about answers the kit cannot
//! know. A simulator implements [`Codes`] once (12345: `0000` success, `4001` bad signature,
//! `2001` busy, …) and the kit uses it for refusals, planned faults and reading the hub's
//! answers to pushes.

use serde_json::{json, Value};

/// The partner's codes, as its interface specification lists them.
pub trait Codes: Send + Sync + 'static {
    /// Success (`0000`).
    fn ok(&self) -> &'static str;
    /// The answer to a call whose authentication fails.
    fn signature_failed(&self) -> &'static str;
    /// "Busy, try again later": the code of a throttled call (HTTP 429).
    fn busy(&self) -> &'static str;
    /// "Under maintenance": the code of a held call answered 503.
    fn maintenance(&self) -> &'static str;
    /// The partner's message for a code, in its own words (Chinese).
    fn message(&self, code: &str) -> &'static str;

    /// The answer envelope; by default `{"code": …, "msg": …, "data": …}`.
    fn envelope(&self, code: &str, data: Value) -> Value {
        json!({ "code": code, "msg": self.message(code), "data": data })
    }

    /// The body of an answer with a planned 5xx status.
    fn server_error(&self) -> Value {
        json!({ "code": "9999", "msg": "系统内部错误" })
    }

    /// The partner's own code in an answer of the hub to a push, when the hub wrapped its answer
    /// in the partner's envelope (`None`: the answer is the hub's own).
    fn envelope_code<'a>(&self, answer: &'a Value) -> Option<&'a str>;

    /// Whether an envelope code of the hub's answer means "send again later".
    fn retry_later(&self, code: &str) -> bool {
        code == self.busy() || code == self.maintenance()
    }
}
