//! `hub-v1`: the hub's own scheme (`X-Hub-App-Id`, `-Timestamp`, `-Nonce`,
//! `-Signature-Method`, `-Signature`; HMAC-SM3 over the canonical request of docs/security.md).
//! The only module of the kit that calls `hub_security::signing`.

use std::time::Duration;

use hub_security::signing::{
    header, nonce_is_valid, received_signed_headers, RequestParts, SignatureMethod,
    SigningCredential, VerifyingCredential,
};

use super::{Inbound, Outbound, ReplayBook, Signer, Verifier};

/// Verifies the hub's calls: the app id the partner gave the hub, HMAC-SM3, a timestamp within
/// the window, a well-formed nonce never used before.
#[derive(Debug, Clone)]
pub struct HubV1Verifier {
    pub app_id: String,
    pub secret: Vec<u8>,
    /// Allowed clock difference.
    pub window: Duration,
}

impl Verifier for HubV1Verifier {
    fn scheme(&self) -> &'static str {
        "hub-v1"
    }

    fn verify(
        &self,
        call: &Inbound<'_>,
        replay: &mut ReplayBook,
        now_ms: i64,
    ) -> Result<(), &'static str> {
        let app_id = call.header(header::APP_ID);
        if app_id != self.app_id {
            return Err("unknown app id");
        }
        let method = SignatureMethod::parse(call.header(header::SIGNATURE_METHOD))
            .filter(|m| *m == SignatureMethod::HmacSm3)
            .ok_or("unsupported signature method")?;
        let timestamp_ms: i64 = call
            .header(header::TIMESTAMP)
            .parse()
            .map_err(|_| "bad timestamp")?;
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        // Checked: a timestamp near i64::MIN or MAX must not overflow the subtraction.
        let in_window = now_ms
            .checked_sub(timestamp_ms)
            .and_then(i64::checked_abs)
            .is_some_and(|skew| skew <= window);
        if !in_window {
            return Err("timestamp outside the window");
        }
        let nonce = call.header(header::NONCE);
        if !nonce_is_valid(nonce) {
            return Err("bad nonce");
        }
        // The headers the hub signs besides the five (its idempotency key, the encryption
        // mode); a protected header outside the signature is refused like a bad signature.
        let signed_headers = received_signed_headers(
            call.headers
                .get(header::SIGNED_HEADERS)
                .and_then(|v| v.to_str().ok()),
            |n| {
                call.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            },
        )
        .map_err(|_| "signed headers malformed, missing or a protected header unsigned")?;
        let parts = RequestParts {
            method,
            http_method: call.http_method,
            path: call.path,
            raw_query: call.raw_query,
            app_id,
            timestamp_ms,
            nonce,
            body: call.body,
            signed_headers: &signed_headers,
        };
        VerifyingCredential::HmacSm3 {
            secret: self.secret.clone(),
        }
        .verify(&parts.canonical(), call.header(header::SIGNATURE))
        .map_err(|_| "signature does not verify")?;
        // Claimed only once the signature verifies, so a forger cannot burn nonces.
        if !replay.claim(nonce, timestamp_ms, now_ms, window) {
            return Err("nonce reused");
        }
        Ok(())
    }
}

/// Signs the partner's pushes as the hub's gateway expects them.
#[derive(Debug, Clone)]
pub struct HubV1Signer {
    /// The partner's app id at the hub's gateway.
    pub app_id: String,
    pub secret: Vec<u8>,
}

impl Signer for HubV1Signer {
    fn scheme(&self) -> &'static str {
        "hub-v1"
    }

    fn sign(&self, push: &Outbound<'_>, now_ms: i64) -> Vec<(String, String)> {
        SigningCredential::HmacSm3 {
            secret: self.secret.clone(),
        }
        .sign_request_with(
            &self.app_id,
            push.http_method,
            push.path,
            push.raw_query,
            push.body,
            now_ms,
            push.headers,
        )
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn with_wrong_key(&self) -> Box<dyn Signer> {
        let mut secret = self.secret.clone();
        secret.extend_from_slice(b"-wrong");
        Box::new(HubV1Signer {
            app_id: self.app_id.clone(),
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: Vec<(String, String)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn what_the_signer_signs_the_verifier_accepts_once() {
        let signer = HubV1Signer {
            app_id: "hub".into(),
            secret: b"s3cret".to_vec(),
        };
        let verifier = HubV1Verifier {
            app_id: "hub".into(),
            secret: b"s3cret".to_vec(),
            window: Duration::from_secs(300),
        };
        let now = 1_700_000_000_000;
        let out = Outbound {
            http_method: "POST",
            path: "/api/x",
            raw_query: "b=2&a=1",
            body: b"{}",
            headers: &[("X-Partner-Message-Id", "m-1")],
        };
        let mut signed = signer.sign(&out, now);
        signed.push(("x-partner-message-id".into(), "m-1".into()));
        let h = headers(signed.clone());
        let call = Inbound {
            http_method: "POST",
            path: "/api/x",
            raw_query: "b=2&a=1",
            headers: &h,
            body: b"{}",
        };
        let mut replay = ReplayBook::default();
        assert_eq!(verifier.verify(&call, &mut replay, now + 1000), Ok(()));
        assert_eq!(
            verifier.verify(&call, &mut replay, now + 1000),
            Err("nonce reused")
        );
        // Another body, a stale clock, a wrong key: refused, and no nonce is spent.
        let other = Inbound {
            body: b"{\"x\":1}",
            ..call
        };
        let mut fresh = ReplayBook::default();
        assert_eq!(
            verifier.verify(&other, &mut fresh, now),
            Err("signature does not verify")
        );
        // The partner message id is covered: changed in transit, the call is refused.
        let mut tampered = h.clone();
        tampered.insert("x-partner-message-id", HeaderValue::from_static("m-2"));
        assert_eq!(
            verifier.verify(
                &Inbound {
                    headers: &tampered,
                    ..call
                },
                &mut fresh,
                now
            ),
            Err("signature does not verify")
        );
        // A timestamp at the edge of i64 is refused, not an overflow.
        assert_eq!(
            verifier.verify(&call, &mut fresh, i64::MIN),
            Err("timestamp outside the window")
        );
        assert_eq!(
            verifier.verify(&call, &mut fresh, now + 301_000),
            Err("timestamp outside the window")
        );
        let mut wrong = signer.with_wrong_key().sign(&out, now);
        wrong.push(("x-partner-message-id".into(), "m-1".into()));
        let wrong = headers(wrong);
        let call = Inbound {
            headers: &wrong,
            ..call
        };
        assert_eq!(
            verifier.verify(&call, &mut fresh, now),
            Err("signature does not verify")
        );
        assert!(fresh.is_empty());
    }
}
