//! `ak-sk` is AWS Signature Version 4, checked against AWS's own published examples:
//!
//! * the Signature Version 4 test suite of the AWS General Reference
//!   (<https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html>, the
//!   `aws-sig-v4-test-suite` files `get-vanilla`, `get-vanilla-query-order-key-case` and
//!   `post-vanilla`): access key `AKIDEXAMPLE`, secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`,
//!   `20150830T123600Z`, `us-east-1`, service `service`, host `example.amazonaws.com`;
//! * the "GET Object" example of the Amazon S3 API reference, "Examples: Signature Calculations
//!   in AWS Signature Version 4" (`sig-v4-header-based-auth.html`): access key
//!   `AKIAIOSFODNN7EXAMPLE`, secret `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, `GET /test.txt`,
//!   host `examplebucket.s3.amazonaws.com`, `Range: bytes=0-9`, `20130524T000000Z`.

use hub_protocols::ak_sk::{
    parse_authorization, sigv4, AkSkSigner, AkSkSpec, AkSkVerifier, SigV4Input,
};
use hub_protocols::digest::sha256;
use hub_protocols::{
    Credentials, InboundRequest, InboundVerifier, OutboundCredentials, OutboundRequest,
    OutboundSigner, Refusal,
};

const SUITE_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn suite(method: &str, query: &str) -> String {
    let headers = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
    ];
    sigv4(
        &SigV4Input {
            method,
            path: "/",
            query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20150830T123600Z",
            region: "us-east-1",
            service: "service",
            double_encode: true,
        },
        SUITE_SECRET,
    )
    .signature
}

#[test]
fn the_aws_test_suite_signatures_are_reproduced() {
    let get = {
        let headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        sigv4(
            &SigV4Input {
                method: "GET",
                path: "/",
                query: "",
                headers: &headers,
                payload_hash: EMPTY_SHA256,
                amz_date: "20150830T123600Z",
                region: "us-east-1",
                service: "service",
                double_encode: true,
            },
            SUITE_SECRET,
        )
    };
    // get-vanilla.creq / .sts / .authz
    assert_eq!(
        get.canonical_request,
        format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}")
    );
    assert_eq!(
        get.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(
        get.signature,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    // get-vanilla-query-order-key-case: the query is sorted before signing.
    assert_eq!(
        suite("GET", "Param2=value2&Param1=value1"),
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
    // post-vanilla.
    assert_eq!(
        suite("POST", ""),
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
}

#[test]
fn the_s3_get_object_example_is_reproduced() {
    let headers = vec![
        (
            "Host".to_string(),
            "examplebucket.s3.amazonaws.com".to_string(),
        ),
        ("Range".to_string(), "bytes=0-9".to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
    ];
    let out = sigv4(
        &SigV4Input {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            service: "s3",
            double_encode: false,
        },
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    assert_eq!(
        out.string_to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    assert_eq!(
        out.signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    assert_eq!(
        out.signed_headers,
        "host;range;x-amz-content-sha256;x-amz-date"
    );
}

fn spec() -> AkSkSpec {
    AkSkSpec {
        vendor: hub_protocols::ak_sk::Vendor::AwsSigV4,
        region: "cn-north-1".into(),
        service: "execute-api".into(),
        sign_headers: vec!["content-type".into()],
        content_sha256_header: false,
    }
}

fn lower(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect()
}

#[tokio::test]
async fn the_signer_and_the_verifier_agree_and_refuse_changes() {
    let signer = AkSkSigner::new(
        spec(),
        OutboundCredentials {
            app_id: "AKIDHUB".into(),
            secret: Some(b"hub-secret-access-key".to_vec()),
            ..Default::default()
        },
    )
    .unwrap();
    let mut req = OutboundRequest {
        method: "POST".into(),
        host: "api.partner.example:8443".into(),
        path: "/v1/licences/verify".into(),
        query: "b=2&a=%E5%B7%A5".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"licenceNo":"L-1"}"#.to_vec(),
    };
    signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
    let auth = parse_authorization(req.header("authorization").unwrap()).unwrap();
    assert_eq!(auth.access_key, "AKIDHUB");
    assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);
    assert_eq!(req.header("x-amz-date"), Some("20261128T033000Z"));

    let mut headers = lower(&req.headers);
    headers.push(("host".into(), req.host.clone()));
    let verifier = AkSkVerifier { spec: spec() };
    let inbound = InboundRequest {
        method: "POST",
        path: &req.path,
        query: &req.query,
        headers: &headers,
        body: &req.body,
    };
    let claim = verifier.claim(&inbound).unwrap();
    assert_eq!(claim.app_id, "AKIDHUB");
    assert_eq!(claim.timestamp_ms, Some(1_795_836_600_000));
    let creds = Credentials {
        secret: Some(b"hub-secret-access-key".to_vec()),
        ..Default::default()
    };
    assert_eq!(verifier.verify(&inbound, &claim, &creds), Ok(()));
    let tampered = InboundRequest {
        body: br#"{"licenceNo":"L-2"}"#,
        ..inbound
    };
    assert_eq!(
        verifier.verify(&tampered, &claim, &creds),
        Err(Refusal::Signature)
    );
    let wrong = Credentials {
        secret: Some(b"another-secret".to_vec()),
        ..Default::default()
    };
    assert_eq!(
        verifier.verify(&inbound, &claim, &wrong),
        Err(Refusal::Signature)
    );
    // A protected header outside SignedHeaders is refused.
    let mut more = headers.clone();
    more.push(("x-partner-message-id".into(), "m-1".into()));
    let with = InboundRequest {
        headers: &more,
        ..inbound
    };
    assert_eq!(
        verifier.verify(&with, &claim, &creds),
        Err(Refusal::HeaderUnsigned)
    );
    assert_eq!(sha256(b"").len(), 32);
}
