//! `hub-v1`: the hub's own scheme (`docs/security.md`), the default of every adapter. The
//! canonical string and the credentials are `hub_security::signing`'s (the KMS client uses them
//! too); this module puts them behind the two traits.

use hub_security::signing::{
    header, nonce_is_valid, received_signed_headers, RequestParts, SignatureMethod,
    SignedHeadersError, SigningCredential, VerifyingCredential,
};

use crate::{
    Claim, Credentials, InboundRequest, InboundVerifier, OutboundCredentials, OutboundRequest,
    OutboundSigner, Refusal, SignError,
};

/// Headers a hub-v1 signer never lists among the signed ones: its own, and those an HTTP
/// client or proxy may set or change on the way (`Content-Length`, `Host`, …).
const NOT_SIGNED: &[&str] = &["content-length", "host", "connection", "user-agent"];

/// Signs the hub's calls with HMAC-SM3 or SM2-SM3.
pub struct HubV1Signer {
    app_id: String,
    credential: SigningCredential,
}

impl HubV1Signer {
    pub fn new(credentials: OutboundCredentials) -> Result<Self, SignError> {
        let credential = match (credentials.secret, credentials.sm2_private_key) {
            (Some(secret), None) => SigningCredential::HmacSm3 { secret },
            (None, Some(key)) => SigningCredential::Sm2 { key },
            _ => {
                return Err(SignError::Credential(
                    "hub-v1 needs exactly one of hmac_secret and sm2_private_key_file".into(),
                ))
            }
        };
        Ok(Self {
            app_id: credentials.app_id,
            credential,
        })
    }
}

#[async_trait::async_trait]
impl OutboundSigner for HubV1Signer {
    fn scheme(&self) -> &'static str {
        "hub-v1"
    }

    /// Adds the five headers, and signs every header already on the request (the
    /// idempotency key, `X-Hub-Encryption`, `Content-Type`) through `X-Hub-Signed-Headers`.
    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError> {
        let to_sign: Vec<(&str, &str)> = request
            .headers
            .iter()
            .filter(|(n, _)| {
                let n = n.to_ascii_lowercase();
                !NOT_SIGNED.contains(&n.as_str()) && !n.starts_with("x-hub-signature")
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signed = self.credential.sign_request_with(
            &self.app_id,
            &request.method,
            &request.path,
            &request.query,
            &request.body,
            now_ms,
            &to_sign,
        );
        for (n, v) in signed {
            request.set_header(n, v);
        }
        Ok(())
    }
}

/// Verifies hub-v1 pushes.
pub struct HubV1Verifier;

impl HubV1Verifier {
    fn parts<'a>(
        request: &'a InboundRequest<'a>,
        claim: &'a Claim,
        method: SignatureMethod,
        signed_headers: &'a [(String, String)],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            http_method: request.method,
            path: request.path,
            raw_query: request.query,
            app_id: &claim.app_id,
            timestamp_ms: claim.timestamp_ms.unwrap_or_default(),
            nonce: claim.nonce.as_deref().unwrap_or_default(),
            body: request.body,
            signed_headers,
        }
    }
}

impl InboundVerifier for HubV1Verifier {
    fn scheme(&self) -> &'static str {
        "hub-v1"
    }

    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal> {
        let (Some(app_id), Some(ts), Some(nonce), Some(method), Some(_)) = (
            request.header(header::APP_ID),
            request.header(header::TIMESTAMP),
            request.header(header::NONCE),
            request.header(header::SIGNATURE_METHOD),
            request.header(header::SIGNATURE),
        ) else {
            return Err(Refusal::Missing);
        };
        SignatureMethod::parse(&method).ok_or(Refusal::MethodUnsupported)?;
        let timestamp_ms: i64 = ts.parse().map_err(|_| Refusal::Timestamp)?;
        if !nonce_is_valid(&nonce) {
            return Err(Refusal::Nonce);
        }
        Ok(Claim {
            app_id,
            timestamp_ms: Some(timestamp_ms),
            nonce: Some(nonce),
        })
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal> {
        let method = request
            .header(header::SIGNATURE_METHOD)
            .and_then(|m| SignatureMethod::parse(&m))
            .ok_or(Refusal::MethodUnsupported)?;
        let signed_headers =
            received_signed_headers(request.header(header::SIGNED_HEADERS).as_deref(), |n| {
                request.header(n)
            })
            .map_err(|e| match e {
                SignedHeadersError::Unsigned(_) => Refusal::HeaderUnsigned,
                _ => Refusal::SignedHeadersInvalid,
            })?;
        let credential = match method {
            SignatureMethod::HmacSm3 => credentials
                .secret
                .clone()
                .map(|secret| VerifyingCredential::HmacSm3 { secret }),
            SignatureMethod::Sm2Sm3 => credentials
                .sm2_public_key
                .clone()
                .map(|public_key| VerifyingCredential::Sm2 { public_key }),
        }
        .ok_or(Refusal::Signature)?;
        let signature = request.header(header::SIGNATURE).ok_or(Refusal::Missing)?;
        let parts = Self::parts(request, claim, method, &signed_headers);
        credential
            .verify(&parts.canonical(), &signature)
            .map_err(|_| Refusal::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signed_out_verifies_in_with_every_header_bound() {
        let signer = HubV1Signer::new(OutboundCredentials {
            app_id: "hub".into(),
            secret: Some(b"0123456789abcdef".to_vec()),
            ..Default::default()
        })
        .unwrap();
        let mut req = OutboundRequest {
            method: "POST".into(),
            host: "p.example".into(),
            path: "/api/x".into(),
            query: "b=2&a=1".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Idempotency-Key".into(), "m-1".into()),
            ],
            body: b"{}".to_vec(),
        };
        signer.sign(&mut req, 1_000).await.unwrap();
        assert_eq!(
            req.header("x-hub-signed-headers"),
            Some("content-type;x-idempotency-key")
        );
        let lower: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        let inbound = InboundRequest {
            method: "POST",
            path: "/api/x",
            query: "b=2&a=1",
            headers: &lower,
            body: b"{}",
        };
        let creds = Credentials {
            secret: Some(b"0123456789abcdef".to_vec()),
            ..Default::default()
        };
        let claim = HubV1Verifier.claim(&inbound).unwrap();
        assert_eq!(claim.app_id, "hub");
        assert_eq!(HubV1Verifier.verify(&inbound, &claim, &creds), Ok(()));
        let mut changed = lower.clone();
        for (n, v) in &mut changed {
            if n == "x-idempotency-key" {
                *v = "m-2".into();
            }
        }
        let inbound2 = InboundRequest {
            headers: &changed,
            ..inbound
        };
        assert_eq!(
            HubV1Verifier.verify(&inbound2, &claim, &creds),
            Err(Refusal::Signature)
        );
    }
}
