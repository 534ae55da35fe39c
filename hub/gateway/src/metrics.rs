//! The gateway's metrics. Every name is described, with its labels, in the hub's catalogue
//! (`hub/app/src/metrics.rs`, documented in `docs/metrics.md`).
//!
//! Labels stay bounded: `partner` and `route` come from the request path, so they are used only
//! when the path names an inbound mapping the hub has loaded; anything else is counted under
//! `unknown`. Never a message id, a ticket number or personal data.

use std::time::Duration;

use crate::Gateway;

/// The label standing for a path the hub does not serve.
const UNKNOWN: &str = "unknown";

/// `(partner, route)` labels of `POST /v1/{partner}/{mapping}`, bounded by what is loaded.
fn route_labels(gw: &Gateway, partner: &str, mapping: &str) -> (String, String) {
    let known = gw.pushable(partner, mapping).is_some();
    if known {
        (partner.to_string(), format!("{partner}/{mapping}"))
    } else {
        (UNKNOWN.to_string(), UNKNOWN.to_string())
    }
}

/// What became of a request, from its answer code.
fn outcome(code: &str) -> &'static str {
    match code {
        "ACCEPTED" => "accepted",
        "ACCEPTED_DUPLICATE" => "duplicate",
        _ => "rejected",
    }
}

/// One request through `POST /v1/{partner}/{mapping}`: counted by outcome and answer code,
/// timed, and its body size recorded.
pub(crate) fn request(
    gw: &Gateway,
    partner: &str,
    mapping: &str,
    code: &'static str,
    body_bytes: usize,
    elapsed: Duration,
) {
    let (partner, route) = route_labels(gw, partner, mapping);
    let outcome = outcome(code);
    metrics::counter!(
        "hub_gateway_requests_total",
        "partner" => partner.clone(),
        "route" => route.clone(),
        "outcome" => outcome,
        "code" => code
    )
    .increment(1);
    metrics::histogram!(
        "hub_gateway_request_duration_seconds",
        "partner" => partner.clone(),
        "route" => route.clone(),
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
    metrics::histogram!("hub_gateway_request_body_bytes", "partner" => partner, "route" => route)
        .record(body_bytes as f64);
}

/// A payload the partner's inbound mapping or the contract refused.
pub(crate) fn mapping_failure(partner: &str, mapping: &str, code: &'static str) {
    metrics::counter!(
        "hub_gateway_mapping_failures_total",
        "partner" => partner.to_string(),
        "mapping" => mapping.to_string(),
        "code" => code
    )
    .increment(1);
}

/// An incoming `traceparent` that did not parse (the request went on in a new trace). Labelled
/// by reason only: it is counted before the caller is authenticated.
pub(crate) fn traceparent_invalid(reason: &'static str) {
    metrics::counter!("hub_gateway_traceparent_invalid_total", "reason" => reason).increment(1);
}

/// A request refused before its body was read because its source address or its app already
/// had as many bodies being read as allowed (`scope`: `source_uploads` or `app_uploads`).
pub(crate) fn uploads_refused(scope: &'static str) {
    metrics::counter!("hub_gateway_uploads_refused_total", "scope" => scope).increment(1);
}

/// A request refused because its nonce was used before (a replay). `partner` is the
/// authenticated app's partner.
pub(crate) fn replay_refused(partner: &str) {
    metrics::counter!("hub_gateway_replays_refused_total", "partner" => partner.to_string())
        .increment(1);
}

/// A request whose signature check failed, by the reason the answer does not tell
/// (`auth.app_unknown`, `auth.method_not_allowed`, `auth.signature_invalid`): all three answer
/// `AUTH_SIGNATURE_INVALID`. Labelled by reason only (the caller is not authenticated).
pub(crate) fn auth_refused(reason: &'static str) {
    metrics::counter!("hub_gateway_auth_refusals_total", "reason" => reason).increment(1);
}

/// Publishes the serving certificate's end of validity as `hub_gateway_tls_cert_expiry_seconds`
/// (Unix time), from the leaf's DER bytes. A certificate whose date cannot be read sets
/// nothing and is logged.
pub(crate) fn tls_certificate(leaf_der: &[u8]) {
    match not_after(leaf_der) {
        Some(t) => metrics::gauge!("hub_gateway_tls_cert_expiry_seconds").set(t as f64),
        None => tracing::warn!("the TLS certificate's notAfter cannot be read; no expiry metric"),
    }
}

/// `notAfter` of an X.509 certificate (DER), as Unix seconds.
///
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }` (RFC 5280 §4.1).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, rest) = tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest; // explicit version
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, validity, _) = tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(rest)?;
    let text = std::str::from_utf8(time).ok()?;
    let full = match tag {
        // UTCTime YYMMDDHHMMSSZ: years 50–99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 if text.len() == 13 => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        0x18 if text.len() == 15 => text.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// One DER element: `(tag, content, rest)`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |l, &x| (l << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["hub.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let cert = params.self_signed(&key).unwrap();
        let expected = chrono::NaiveDate::from_ymd_opt(2031, 7, 15)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(not_after(cert.der()), Some(expected));
        // GeneralizedTime from 2050 on.
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(
                chrono::NaiveDate::from_ymd_opt(2051, 1, 2)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc()
                    .timestamp()
            )
        );
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[0x02, 0x01, 0x00]), None);
    }

    #[test]
    fn outcomes_from_answer_codes() {
        assert_eq!(outcome("ACCEPTED"), "accepted");
        assert_eq!(outcome("ACCEPTED_DUPLICATE"), "duplicate");
        assert_eq!(outcome("AUTH_REPLAY"), "rejected");
    }
}
