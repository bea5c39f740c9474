use super::*;
use std::borrow::Cow;

use crate::{OfflineReason, ReadingState, Status};

const READINGS: &str = "sitewatch/v1/bj1/web-01/readings";
const STATE: &str = "sitewatch/v1/bj1/web-01/state";
const EVENTS: &str = "sitewatch/v1/bj1/web-01/events";

fn batch_with(reading: &str) -> String {
    format!(r#"{{"v":1,"seq":1,"ts":1764080000000,"readings":[{reading}]}}"#)
}

fn ok_reading() -> &'static str {
    r#"{"src":"ipmi","dev":"bmc","name":"Inlet Temp","q":"temperature_celsius","value":23.5,"state":"ok"}"#
}

fn reason(topic: &str, payload: &str) -> &'static str {
    match decode(topic, payload.as_bytes()) {
        Ok(m) => panic!("accepted {payload}: {m:?}"),
        Err(e) => e.reason(),
    }
}

#[test]
fn valid_readings_batch_decodes() {
    let m = decode(READINGS, batch_with(ok_reading()).as_bytes()).unwrap();
    let Body::Readings(batch) = m.body else {
        panic!("not readings")
    };
    assert_eq!(batch.seq, 1);
    assert_eq!(batch.readings[0].value, Some(23.5));
    assert_eq!(batch.readings[0].state, ReadingState::Ok);
}

#[test]
fn bad_topic_is_rejected() {
    assert_eq!(
        reason("sitewatch/v1/BJ1/web-01/readings", "{}"),
        "bad_topic"
    );
    assert_eq!(reason("foo/bar", "{}"), "bad_topic");
}

#[test]
fn oversized_payload_is_rejected_before_parsing() {
    let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES));
    assert_eq!(reason(READINGS, &big), "too_large");
}

#[test]
fn not_json_is_rejected() {
    assert_eq!(reason(READINGS, "hello"), "not_json");
    assert_eq!(reason(READINGS, r#"{"v":1,"seq":"#), "not_json");
    assert_eq!(reason(READINGS, ""), "not_json");
}

#[test]
fn empty_payload_on_retained_topic_is_a_cleared_message() {
    assert_eq!(decode(STATE, b"").unwrap().body, Body::Cleared);
    assert_eq!(
        decode("sitewatch/v1/bj1/_signals", b"").unwrap().body,
        Body::Cleared
    );
}

#[test]
fn wrong_version_is_rejected_even_when_the_shape_differs() {
    assert_eq!(
        reason(READINGS, r#"{"v":2,"seq":1,"ts":1,"readings":[]}"#),
        "wrong_version"
    );
    assert_eq!(reason(READINGS, r#"{"v":2,"items":{}}"#), "wrong_version");
    assert_eq!(reason(READINGS, r#"{"v":"1","seq":1}"#), "wrong_version");
}

#[test]
fn missing_field_is_named() {
    let err = decode(READINGS, br#"{"v":1,"ts":1,"readings":[]}"#).unwrap_err();
    assert_eq!(err, Rejection::MissingField("seq".into()));
    let no_value = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","state":"ok"}"#;
    assert_eq!(
        decode(READINGS, batch_with(no_value).as_bytes()).unwrap_err(),
        Rejection::MissingField("value".into())
    );
}

#[test]
fn null_value_is_accepted_as_unreadable() {
    let r =
        r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":null,"state":"unknown"}"#;
    let m = decode(READINGS, batch_with(r).as_bytes()).unwrap();
    let Body::Readings(b) = m.body else { panic!() };
    assert_eq!(b.readings[0].value, None);
}

#[test]
fn a_negative_counter_is_invalid_and_a_negative_gauge_is_not() {
    let counter = |value: &str| {
        batch_with(&format!(
            r#"{{"src":"host","dev":"eth0","name":"eth0","q":"network_receive_bytes_total","value":{value},"state":"ok"}}"#
        ))
    };
    assert_eq!(reason(READINGS, &counter("-1")), "invalid_value");
    for fine in ["0", "12345678901", "null"] {
        decode(READINGS, counter(fine).as_bytes()).unwrap();
    }
    let gauge = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"temperature_celsius","value":-5,"state":"ok"}"#;
    decode(READINGS, batch_with(gauge).as_bytes()).unwrap();
}

#[test]
fn mistyped_field_is_rejected() {
    assert_eq!(
        reason(READINGS, r#"{"v":1,"seq":"one","ts":1,"readings":[]}"#),
        "wrong_type"
    );
    let r = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":"12","state":"ok"}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "wrong_type");
    assert_eq!(reason(READINGS, "[1,2]"), "wrong_type");
}

#[test]
fn unknown_enum_value_is_invalid() {
    let r = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"bad"}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "invalid_value");
    assert_eq!(
        reason(STATE, r#"{"v":1,"status":"sleeping"}"#),
        "invalid_value"
    );
}

#[test]
fn out_of_range_number_is_non_finite() {
    let r = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1e999,"state":"ok"}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "non_finite");
}

#[test]
fn overlong_names_are_rejected() {
    let long = "n".repeat(MAX_SENSOR_NAME_LEN + 1);
    let r = format!(
        r#"{{"src":"ipmi","dev":"bmc","name":"{long}","q":"power_watts","value":1,"state":"ok"}}"#
    );
    let err = decode(READINGS, batch_with(&r).as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Rejection::NameTooLong {
            field: "readings[0].name".into(),
            len: 129,
            max: 128
        }
    );
    // 128 multi-byte characters are within the limit.
    let wide = "é".repeat(MAX_SENSOR_NAME_LEN);
    let r = format!(
        r#"{{"src":"ipmi","dev":"bmc","name":"{wide}","q":"power_watts","value":1,"state":"ok"}}"#
    );
    assert!(decode(READINGS, batch_with(&r).as_bytes()).is_ok());
}

#[test]
fn invalid_quantity_and_label_names_are_rejected() {
    let r = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"Power-Watts","value":1,"state":"ok"}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "invalid_name");
    let r = r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"ok","labels":{"host":"spoof"}}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "invalid_name");
    let r = r#"{"src":"ipmi","dev":"","name":"x","q":"power_watts","value":1,"state":"ok"}"#;
    assert_eq!(reason(READINGS, &batch_with(r)), "invalid_name");
}

#[test]
fn too_many_labels_are_rejected() {
    let labels: Vec<String> = (0..=MAX_LABELS).map(|i| format!(r#""l{i}":"x""#)).collect();
    let r = format!(
        r#"{{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"ok","labels":{{{}}}}}"#,
        labels.join(",")
    );
    assert_eq!(reason(READINGS, &batch_with(&r)), "too_many_labels");
}

#[test]
fn payload_naming_another_host_or_site_is_rejected() {
    let err = decode(
        READINGS,
        br#"{"v":1,"seq":1,"ts":1,"readings":[],"host":"db-01"}"#,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "identity_mismatch");
    assert_eq!(
        reason(STATE, r#"{"v":1,"status":"online","site":"sh2"}"#),
        "identity_mismatch"
    );
    assert!(
        decode(
            READINGS,
            br#"{"v":1,"seq":1,"ts":1,"readings":[],"host":"web-01"}"#
        )
        .is_ok()
    );
    assert_eq!(
        reason(
            "sitewatch/v1/bj1/_signals",
            r#"{"v":1,"ts":1,"level":3,"signals":[{"site":"sh2","level":"L3","cause":"power","subject":"sh2","severity":"critical","since":1}]}"#
        ),
        "identity_mismatch"
    );
}

#[test]
fn will_decodes_as_lost() {
    let m = decode(STATE, br#"{"v":1,"status":"offline","reason":"lost"}"#).unwrap();
    let Body::State(s) = m.body else { panic!() };
    assert_eq!(s.status, Status::Offline);
    assert_eq!(s.reason, Some(OfflineReason::Lost));
    assert_eq!(s, StatePayload::will());
}

#[test]
fn unknown_fields_are_ignored() {
    let m = decode(
        EVENTS,
        br#"{"v":1,"seq":7,"ts":1,"future":{"x":1},"events":[{"src":"modbus","dev":"ups-a","type":"ups_on_battery","severity":"critical","message":"m","extra":true}]}"#,
    );
    assert!(m.is_ok(), "{m:?}");
}

#[test]
fn zero_interval_is_invalid() {
    assert_eq!(
        reason(STATE, r#"{"v":1,"status":"online","interval_ms":0}"#),
        "invalid_value"
    );
}

#[test]
fn intervals_outside_100ms_to_one_day_and_too_many_sources_are_invalid() {
    for payload in [
        r#"{"v":1,"status":"online","interval_ms":99}"#,
        r#"{"v":1,"status":"online","interval_ms":86400001}"#,
        r#"{"v":1,"status":"online","sources":{"host":1000000000000000}}"#,
        r#"{"v":1,"status":"online","sources":{"host":50}}"#,
    ] {
        assert_eq!(reason(STATE, payload), "invalid_value", "{payload}");
    }
    let ok = r#"{"v":1,"status":"online","interval_ms":100,"sources":{"host":86400000}}"#;
    assert!(decode(STATE, ok.as_bytes()).is_ok());
    let many: Vec<String> = (0..65).map(|i| format!(r#""s{i}":5000"#)).collect();
    let payload = format!(
        r#"{{"v":1,"status":"online","sources":{{{}}}}}"#,
        many.join(",")
    );
    assert_eq!(reason(STATE, &payload), "invalid_value");
    let sixty_four = many[..64].join(",");
    let payload = format!(r#"{{"v":1,"status":"online","sources":{{{sixty_four}}}}}"#);
    assert!(decode(STATE, payload.as_bytes()).is_ok());
}

#[test]
fn every_reason_is_listed() {
    for r in [
        Rejection::NotJson(String::new()),
        Rejection::MissingField(String::new()),
    ] {
        assert!(Rejection::REASONS.contains(&r.reason()));
    }
}

#[test]
fn boot_and_event_id_are_optional_and_decoded_when_present() {
    let plain = decode(EVENTS, br#"{"v":1,"seq":1,"ts":1,"events":[{"src":"ipmi","dev":"bmc","type":"sel_entry","severity":"low","message":"m"}]}"#).unwrap();
    let Body::Events(plain) = plain.body else {
        panic!("not events")
    };
    assert_eq!((plain.boot, plain.events[0].id.clone()), (None, None));
    let tagged = decode(EVENTS, br#"{"v":1,"seq":1,"ts":1,"boot":"9f2c41d0","events":[{"src":"ipmi","dev":"bmc","type":"sel_entry","severity":"low","message":"m","id":"sel.bmc.0.1a.5f"}]}"#).unwrap();
    let Body::Events(tagged) = tagged.body else {
        panic!("not events")
    };
    assert_eq!(tagged.boot.as_deref(), Some("9f2c41d0"));
    assert_eq!(tagged.events[0].id.as_deref(), Some("sel.bmc.0.1a.5f"));
    let readings = decode(
        READINGS,
        br#"{"v":1,"seq":3,"ts":1,"boot":"9f2c41d0","readings":[]}"#,
    )
    .unwrap();
    let Body::Readings(readings) = readings.body else {
        panic!("not readings")
    };
    assert_eq!(readings.boot.as_deref(), Some("9f2c41d0"));
}

#[test]
fn empty_overlong_or_control_boot_and_event_id_are_rejected() {
    let boot = |b: &str| format!(r#"{{"v":1,"seq":1,"ts":1,"boot":{b},"readings":[]}}"#);
    assert_eq!(reason(READINGS, &boot(r#""""#)), "invalid_name");
    assert_eq!(reason(READINGS, &boot(r#""a\nb""#)), "invalid_name");
    assert_eq!(
        reason(READINGS, &boot(&format!("\"{}\"", "b".repeat(65)))),
        "name_too_long"
    );
    let id = |i: &str| {
        format!(
            r#"{{"v":1,"seq":1,"ts":1,"events":[{{"src":"ipmi","dev":"bmc","type":"sel_entry","severity":"low","message":"m","id":{i}}}]}}"#
        )
    };
    assert_eq!(reason(EVENTS, &id(r#""""#)), "invalid_name");
    assert_eq!(
        reason(EVENTS, &id(&format!("\"{}\"", "i".repeat(129)))),
        "name_too_long"
    );
    assert_eq!(reason(EVENTS, &id("7")), "wrong_type");
}

/// The in-place decoder, as the owned message it stands for.
fn in_place_as_owned(topic: &str, payload: &[u8]) -> Result<Message, Rejection> {
    decode_in_place(topic, payload).map(|d| match d {
        Decoded::Readings(topic, batch) => Message {
            topic,
            body: Body::Readings(batch.to_owned_payload()),
        },
        Decoded::Message(m) => m,
    })
}

#[test]
fn in_place_decoding_borrows_plain_strings_and_owns_escaped_ones() {
    let payload = br#"{"v":1,"seq":4,"ts":1,"boot":"b-1","host":"web-01","readings":[{"src":"ipmi","dev":"bmc","name":"Inlet \"A\"","q":"temperature_celsius","value":23.5,"state":"ok","labels":{"zone":"a1"}}]}"#;
    let Ok(Decoded::Readings(_, batch)) = decode_in_place(READINGS, payload) else {
        panic!("not an in-place readings batch")
    };
    let r = &batch.readings[0];
    assert!(matches!(r.src, Cow::Borrowed("ipmi")));
    assert!(matches!(r.q, Cow::Borrowed("temperature_celsius")));
    assert!(matches!(r.name, Cow::Owned(ref s) if s == "Inlet \"A\""));
    assert!(matches!(batch.boot, Some(Cow::Borrowed("b-1"))));
    assert!(matches!(batch.host, Some(Cow::Borrowed("web-01"))));
    let (k, v) = r.labels.iter().next().unwrap();
    assert!(matches!(
        (k, v),
        (Cow::Borrowed("zone"), Cow::Borrowed("a1"))
    ));
}

#[test]
fn in_place_decoding_accepts_what_decode_does_and_rejects_the_rest_for_the_same_reason() {
    let cases: Vec<(&str, String)> = vec![
        (READINGS, batch_with(ok_reading())),
        (READINGS, batch_with("")),
        (READINGS, String::new()),
        (READINGS, "{not json".into()),
        (READINGS, r#"{"v":2,"seq":1,"ts":1,"readings":[]}"#.into()),
        (READINGS, r#"{"v":1,"ts":1,"readings":[]}"#.into()),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"Bad-Q","value":1,"state":"ok"}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"errors_total","value":-1,"state":"ok"}"#,
            ),
        ),
        (
            READINGS,
            batch_with(r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","state":"ok"}"#),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"on"}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1e400,"state":"ok"}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"","name":"x","q":"power_watts","value":1,"state":"ok"}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"ok","labels":{"host":"h"}}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":"ipmi","dev":"bmc","name":"x","q":"power_watts","value":1,"state":"ok","labels":{"a":"1","a":"2"}}"#,
            ),
        ),
        (
            READINGS,
            batch_with(
                r#"{"src":3,"dev":"bmc","name":"x","q":"power_watts","value":1,"state":"ok"}"#,
            ),
        ),
        (
            READINGS,
            r#"{"v":1,"seq":1,"ts":1,"readings":[],"host":"web-02"}"#.into(),
        ),
        (
            READINGS,
            r#"{"v":1,"seq":1,"ts":1,"readings":[],"boot":""}"#.into(),
        ),
        (
            READINGS,
            r#"{"v":1,"seq":1,"ts":1,"readings":[],"boot":null,"site":null}"#.into(),
        ),
        (READINGS, "x".repeat(MAX_PAYLOAD_BYTES + 1)),
        ("sitewatch/v1/BJ1/web-01/readings", batch_with("")),
        (
            STATE,
            r#"{"v":1,"status":"online","ts":1,"boot":"b"}"#.into(),
        ),
        (STATE, String::new()),
        (EVENTS, r#"{"v":1,"seq":1,"ts":1,"events":[]}"#.into()),
    ];
    for (topic, payload) in cases {
        assert_eq!(
            decode(topic, payload.as_bytes()).map_err(|e| e.reason()),
            in_place_as_owned(topic, payload.as_bytes()).map_err(|e| e.reason()),
            "{topic} {payload:.200}"
        );
    }
}

#[test]
fn the_control_character_check_agrees_with_unicode_on_every_character() {
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        let text = format!("Fan {c} 2");
        assert_eq!(has_control(&text), c.is_control(), "{:?}", c);
    }
}
