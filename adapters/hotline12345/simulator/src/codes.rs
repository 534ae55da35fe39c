//! The platform's business codes and answer envelope, exactly as
//! `adapters/hotline12345/adapter.toml` lists them.

use serde_json::{json, Value};

pub const OK: &str = "0000";
pub const TICKET_NOT_FOUND: &str = "1001";
pub const ALREADY_SIGNED: &str = "1002";
pub const RETURN_WINDOW_PASSED: &str = "1003";
pub const STATE_FORBIDS: &str = "1004";
pub const MALFORMED: &str = "1005";
pub const BUSY: &str = "2001";
pub const MAINTENANCE: &str = "2002";
pub const SIGNATURE_FAILED: &str = "4001";

/// The platform's message for a code (Chinese, as the platform writes it).
pub fn message(code: &str) -> &'static str {
    match code {
        OK => "成功",
        TICKET_NOT_FOUND => "工单不存在",
        ALREADY_SIGNED => "工单已签收",
        RETURN_WINDOW_PASSED => "已超过退单时限",
        STATE_FORBIDS => "工单当前状态不允许该操作",
        MALFORMED => "报文格式错误或必填项缺失",
        BUSY => "系统繁忙，请稍后重试",
        MAINTENANCE => "系统维护中",
        SIGNATURE_FAILED => "签名验证失败",
        _ => "业务处理失败",
    }
}

/// `{"code": …, "msg": …, "data": …}`.
pub fn envelope(code: &str, data: Value) -> Value {
    json!({ "code": code, "msg": message(code), "data": data })
}

/// The platform's codes, for the simulator kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlatformCodes;

impl sim_kit::Codes for PlatformCodes {
    fn ok(&self) -> &'static str {
        OK
    }

    fn signature_failed(&self) -> &'static str {
        SIGNATURE_FAILED
    }

    fn busy(&self) -> &'static str {
        BUSY
    }

    fn maintenance(&self) -> &'static str {
        MAINTENANCE
    }

    fn message(&self, code: &str) -> &'static str {
        message(code)
    }

    /// The platform's codes are four digits; the hub's own are words (`ACCEPTED`).
    fn envelope_code<'a>(&self, answer: &'a Value) -> Option<&'a str> {
        answer
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| c.len() == 4 && c.bytes().all(|b| b.is_ascii_digit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_kit::Codes;

    #[test]
    fn the_platform_code_of_a_hub_answer_is_read() {
        let c = PlatformCodes;
        let wrapped =
            json!({"code": "0000", "msg": "成功", "data": {"hub_code": "ACCEPTED_DUPLICATE"}});
        assert_eq!(c.envelope_code(&wrapped), Some("0000"));
        assert_eq!(c.envelope_code(&json!({"code": "ACCEPTED"})), None);
        assert_eq!(c.envelope_code(&json!({"code": "2001"})), Some("2001"));
        assert!(c.retry_later(BUSY) && c.retry_later(MAINTENANCE) && !c.retry_later(MALFORMED));
        assert_eq!(c.envelope(OK, json!({})), envelope(OK, json!({})));
    }
}
