//! The case handlers' API against the real broker, on SQLite and on PostgreSQL: tokens and
//! roles, filters and deadline status, personal data masked or clear by token, the state
//! machine's refusals with their codes, and the outbound events read back from Kafka and
//! decoded.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Duration as Span;
use common::*;
use hotline_app::kinds::Kind;
use hub_bus::{now_shanghai, Envelope};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

fn tickets_of(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ticket_no"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_act_through_the_state_machine_and_the_events_reach_kafka() {
    for backend in BOTH {
        let topics = fresh_topics().await;
        let feed = Feed::new(&topics);
        let now = now_shanghai();
        // A: sign deadline in an hour; B: overdue, another district and category; C: days left.
        let a = dispatch("GDA0001", UNIT, now, Span::hours(1), Span::days(3));
        let mut b = dispatch(
            "GDA0002",
            UNIT,
            now - Span::hours(5),
            Span::hours(2),
            Span::days(3),
        );
        b["district_code"] = json!("310104");
        b["category_code"] = json!("0302");
        let c = dispatch("GDA0003", UNIT, now, Span::days(3), Span::days(10));
        // D: dispatched 30 hours ago, so once signed it is past the 24-hour return window.
        let d = dispatch(
            "GDA0004",
            UNIT,
            now - Span::hours(30),
            Span::hours(100),
            Span::days(10),
        );
        let mut dispatches: BTreeMap<&str, Envelope> = BTreeMap::new();
        for (no, r) in [
            ("GDA0001", &a),
            ("GDA0002", &b),
            ("GDA0003", &c),
            ("GDA0004", &d),
        ] {
            dispatches.insert(no, feed.send(Kind::Dispatched, r).await);
        }

        let db = TestDb::create(backend).await;
        let config = write_config(&db.dir, &db.url, &topics, &unique("hotline-group"));
        let app = hotline_app::start(&load(&config)).await.unwrap();
        wait_caught_up(&app.db, &topics, WAIT).await;
        let api = Api::new(app.addr);

        // Tokens and roles.
        let (s, body) = api.get(None, "/api/v1/tickets").await;
        assert_eq!((s, code(&body)), (401, "AUTH_TOKEN_MISSING"), "{body}");
        let (s, body) = api.get(Some("not-a-token"), "/api/v1/tickets").await;
        assert_eq!((s, code(&body)), (401, "AUTH_TOKEN_INVALID"), "{body}");
        assert!(body["message_zh"].as_str().is_some() && body["message_en"].as_str().is_some());
        let (s, body) = api.get(None, "/healthz").await;
        assert_eq!((s, body["status"].as_str()), (200, Some("ok")));

        // Listing, filters, deadline status, paging.
        let list = |q: &'static str| {
            let api = &api;
            async move {
                let (s, body) = api.get(Some(VIEWER), &format!("/api/v1/tickets{q}")).await;
                assert_eq!(s, 200, "{q}: {body}");
                body
            }
        };
        let all = list("").await;
        assert_eq!(all["total"], 4);
        assert_eq!(
            tickets_of(&all),
            ["GDA0002", "GDA0001", "GDA0004", "GDA0003"],
            "most urgent first"
        );
        assert_eq!(all["items"][0]["deadline"]["status"], "overdue");
        assert_eq!(all["items"][1]["deadline"]["status"], "due_within_24h");
        assert_eq!(all["items"][2]["deadline"]["status"], "on_time");
        assert_eq!(all["items"][3]["deadline"]["status"], "on_time");
        assert_eq!(all["items"][0]["deadline"]["kind"], "sign");
        assert_eq!(tickets_of(&list("?deadline=overdue").await), ["GDA0002"]);
        assert_eq!(
            tickets_of(&list("?deadline=due_within_24h").await),
            ["GDA0001"]
        );
        assert_eq!(
            tickets_of(&list("?deadline=on_time").await),
            ["GDA0004", "GDA0003"]
        );
        assert_eq!(tickets_of(&list("?district=310104").await), ["GDA0002"]);
        assert_eq!(tickets_of(&list("?category=0302").await), ["GDA0002"]);
        assert_eq!(list("?status=SIGNED").await["total"], 0);
        let page = list("?status=DISPATCHED&limit=1&offset=1").await;
        assert_eq!(
            (page["total"].as_i64(), tickets_of(&page)),
            (Some(4), vec!["GDA0001".to_string()])
        );
        let (s, body) = api.get(Some(VIEWER), "/api/v1/tickets?deadline=soon").await;
        assert_eq!((s, code(&body)), (400, "HOTLINE_INVALID_QUERY"), "{body}");
        assert_eq!(body["detail"]["field"], "deadline");

        // Personal data: masked for the viewer and the trainee, clear for the handler.
        for token in [VIEWER, TRAINEE] {
            let (s, t) = api.get(Some(token), "/api/v1/tickets/GDA0001").await;
            assert_eq!(s, 200, "{t}");
            assert_eq!(t["personal_data"], "masked");
            assert_eq!(t["caller_phone"], "139****1111");
            assert_eq!(t["caller_name"], "测**");
            assert_eq!(t["address"], "浦东新区测试***");
            let history = t["history"].as_array().unwrap();
            assert_eq!(history[0]["record"]["caller_phone"], "139****1111");
        }
        let (_, t) = api.get(Some(HANDLER), "/api/v1/tickets/GDA0001").await;
        assert_eq!(t["personal_data"], "clear");
        assert_eq!(t["caller_phone"], CALLER_PHONE);
        assert_eq!(t["caller_name"], CALLER_NAME);
        assert_eq!(t["address"], ADDRESS);
        assert_eq!(t["history"][0]["record"]["caller_name"], CALLER_NAME);
        assert_eq!(t["allowed_actions"], json!(["sign", "return"]));

        // The state machine.
        let post = |token: &'static str, path: String, body: Value| {
            let api = &api;
            async move { api.post(Some(token), &path, body).await }
        };
        let (s, body) = post(VIEWER, "/api/v1/tickets/GDA0001/sign".into(), json!({})).await;
        assert_eq!((s, code(&body)), (403, "AUTH_ROLE_FORBIDDEN"), "{body}");
        let reply_body = json!({
            "result": "已安排泵车排水，积水已消除。",
            "resolution": "RESOLVED",
            "caller_contacted": true,
            "handler_name": "测试承办人",
            "handler_phone": "13900002222",
            "attachments": [{"file_id": "obj-1", "file_name": "现场.jpg", "content_type": "image/jpeg",
                             "size_bytes": 1024, "sm3_digest": "AB".repeat(32)}],
        });
        let (s, body) = post(
            HANDLER,
            "/api/v1/tickets/GDA0001/reply".into(),
            reply_body.clone(),
        )
        .await;
        assert_eq!(
            (s, code(&body)),
            (409, "HOTLINE_ILLEGAL_TRANSITION"),
            "{body}"
        );
        assert!(
            body["message_zh"].as_str().unwrap().contains("待签收"),
            "{body}"
        );
        assert!(
            body["message_en"].as_str().unwrap().contains("DISPATCHED"),
            "{body}"
        );
        assert_eq!(body["detail"]["allowed"], json!(["sign", "return"]));

        let (s, signed) = post(
            HANDLER,
            "/api/v1/tickets/GDA0001/sign".into(),
            json!({"signer_name": "测试签收人"}),
        )
        .await;
        assert_eq!(s, 200, "{signed}");
        assert_eq!(signed["ticket"]["status"], "SIGNED");
        assert_eq!(signed["ticket"]["deadline"]["kind"], "handle");
        let (s, body) = post(HANDLER, "/api/v1/tickets/GDA0001/sign".into(), json!({})).await;
        assert_eq!(
            (s, code(&body)),
            (409, "HOTLINE_ILLEGAL_TRANSITION"),
            "{body}"
        );

        let too_early = now + Span::days(1);
        let (s, body) = post(
            HANDLER,
            "/api/v1/tickets/GDA0001/extension".into(),
            json!({"requested_deadline": rfc(too_early), "reason": "需协调道路施工单位"}),
        )
        .await;
        assert_eq!(
            (s, code(&body)),
            (422, "HOTLINE_EXTENSION_NOT_LATER"),
            "{body}"
        );
        let (s, extended) = post(HANDLER, "/api/v1/tickets/GDA0001/extension".into(),
            json!({"requested_deadline": rfc(now + Span::days(7)), "reason": "需协调道路施工单位", "applicant_name": "测试申请人"})).await;
        assert_eq!(s, 200, "{extended}");
        assert_eq!(extended["ticket"]["status"], "EXTENSION_REQUESTED");

        let mut blank = reply_body.clone();
        blank["result"] = json!("   ");
        let (s, body) = post(HANDLER, "/api/v1/tickets/GDA0001/reply".into(), blank).await;
        assert_eq!((s, code(&body)), (422, "HOTLINE_INVALID_REQUEST"), "{body}");
        assert_eq!(body["detail"]["fields"][0]["field"], "result");
        let (s, replied) = post(HANDLER, "/api/v1/tickets/GDA0001/reply".into(), reply_body).await;
        assert_eq!(s, 200, "{replied}");
        assert_eq!(replied["ticket"]["status"], "REPLIED");
        assert_eq!(replied["ticket"]["deadline"]["status"], "not_applicable");

        let (s, returned) = post(
            HANDLER,
            "/api/v1/tickets/GDA0003/return".into(),
            json!({
                "reason": "不属于水务部门职责",
                "suggested_unit_code": "11310115MB0000001X",
                "suggested_unit_name": "浦东新区生态环境局",
            }),
        )
        .await;
        assert_eq!(s, 200, "{returned}");
        // Signed more than 24 hours after its dispatch: too late to return.
        let (s, body) = post(HANDLER, "/api/v1/tickets/GDA0004/sign".into(), json!({})).await;
        assert_eq!(s, 200, "{body}");
        let (s, body) = post(
            HANDLER,
            "/api/v1/tickets/GDA0004/return".into(),
            json!({"reason": "不属于水务部门职责"}),
        )
        .await;
        assert_eq!(
            (s, code(&body)),
            (409, "HOTLINE_RETURN_WINDOW_CLOSED"),
            "{body}"
        );
        let (s, body) = post(HANDLER, "/api/v1/tickets/GDA9999/sign".into(), json!({})).await;
        assert_eq!(
            (s, code(&body)),
            (404, "HOTLINE_TICKET_NOT_FOUND"),
            "{body}"
        );
        let resp = api
            .http
            .post(format!("{}/api/v1/tickets/GDA0002/return", api.base))
            .bearer_auth(HANDLER)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        assert_eq!(
            code(&resp.json::<Value>().await.unwrap()),
            "HOTLINE_INVALID_JSON"
        );

        // The outbound events, read back from Kafka and decoded.
        let contracts = contracts();
        let cipher = cipher();
        let expect = [
            (Kind::Signed, "GDA0001", &signed),
            (Kind::ExtensionRequested, "GDA0001", &extended),
            (Kind::Replied, "GDA0001", &replied),
            (Kind::Returned, "GDA0003", &returned),
        ];
        for (kind, no, answer) in expect {
            let got = read_topic(topics.of(kind), 1, WAIT).await;
            let d = &got[0];
            let env = d.envelope.as_ref().expect("envelope headers");
            assert_eq!(
                env.message_id.to_string(),
                answer["message_id"].as_str().unwrap()
            );
            assert_eq!(
                env.event_type,
                hub_pipeline::split_topic(kind.contract_topic()).0
            );
            assert_eq!(env.contract_version, 1);
            assert_eq!(env.object_id, no);
            assert_eq!(d.key.as_deref(), Some(no.as_bytes()));
            assert_eq!(env.source_adapter, "hotline-app");
            assert_eq!(env.partner, "test-bureau");
            assert_eq!(
                env.causation_id,
                Some(dispatches[no].message_id),
                "caused by the dispatch"
            );
            assert_eq!(
                env.correlation_id, dispatches[no].correlation_id,
                "correlation carried over"
            );
            let contract = contracts.get(kind);
            let payload = d.payload.as_deref().unwrap();
            let (schema_id, _) = hub_contracts::unframe(payload).unwrap();
            assert_eq!(schema_id, contract.schema_id());
            let mut record =
                hub_pipeline::read_record(&contracts.catalog, contract, schema_id, payload)
                    .unwrap();
            assert_eq!(record["ticket_no"], no);
            assert_eq!(record["handling_unit_code"], UNIT);
            let sealed = hub_pipeline::pii::open_record(&cipher, contract, &mut record).unwrap();
            match kind {
                Kind::Signed => {
                    assert_eq!(sealed, 1, "signer_name travels sealed");
                    assert_eq!(record["signer_name"], "测试签收人");
                }
                Kind::ExtensionRequested => {
                    assert_eq!(record["applicant_name"], "测试申请人");
                    assert_eq!(record["reason"], "需协调道路施工单位");
                    assert_eq!(record["current_deadline"], a["handle_deadline"]);
                }
                Kind::Replied => {
                    assert_eq!(sealed, 2, "handler name and phone travel sealed");
                    assert_eq!(record["handler_phone"], "13900002222");
                    assert_eq!(record["resolution"], "RESOLVED");
                    assert_eq!(record["attachments"][0]["sm3_digest"], "ab".repeat(32));
                }
                Kind::Returned => {
                    assert_eq!(record["suggested_unit_code"], "11310115MB0000001X");
                    assert_eq!(record["operator_name"], Value::Null);
                }
                _ => unreachable!(),
            }
        }

        // The history shows our events, masked for the viewer, produced by the relay.
        wait_for("the relay to mark the events produced", WAIT, || async {
            let (_, t) = api.get(Some(VIEWER), "/api/v1/tickets/GDA0001").await;
            t["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["direction"] == "outbound")
                .all(|h| h["delivery"] == "produced")
        })
        .await;
        let (_, t) = api.get(Some(VIEWER), "/api/v1/tickets/GDA0001").await;
        let kinds: Vec<&str> = t["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["dispatched", "signed", "extension_requested", "replied"]
        );
        assert_eq!(t["history"][1]["record"]["signer_name"], "测****");
        assert_eq!(t["history"][1]["actor"], "handler");
        assert_eq!(t["history"][3]["record"]["handler_phone"], "139****2222");
        let (_, t) = api.get(Some(HANDLER), "/api/v1/tickets/GDA0001").await;
        assert_eq!(t["history"][1]["record"]["signer_name"], "测试签收人");

        // The platform closes A: nothing more may be done to it.
        feed.send(Kind::Closed, &close("GDA0001", now_shanghai(), true))
            .await;
        wait_caught_up(&app.db, &topics, WAIT).await;
        let (_, t) = api.get(Some(VIEWER), "/api/v1/tickets/GDA0001").await;
        assert_eq!(t["status"], "CLOSED");
        assert_eq!(t["close_kind"], "COMPLETED");
        let (s, body) = post(
            HANDLER,
            "/api/v1/tickets/GDA0001/return".into(),
            json!({"reason": "x"}),
        )
        .await;
        assert_eq!(
            (s, code(&body)),
            (409, "HOTLINE_ILLEGAL_TRANSITION"),
            "{body}"
        );
        assert_eq!(body["detail"]["status"], "CLOSED");

        app.stop();
        assert!(app.wait().await, "clean stop");

        if backend == Backend::Sqlite {
            // At rest, the caller's phone exists only sealed (and masked).
            for f in std::fs::read_dir(db.dir.join("var")).unwrap() {
                let bytes = std::fs::read(f.unwrap().path()).unwrap();
                let clear = CALLER_PHONE.as_bytes();
                assert!(
                    !bytes.windows(clear.len()).any(|w| w == clear),
                    "the caller's phone is in the database file in clear"
                );
            }
        }
        db.drop_db().await;
    }
}
