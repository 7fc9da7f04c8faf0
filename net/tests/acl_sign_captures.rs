//! ACL signatures of frames real clients sent (`tests/data/wire-captures`, the
//! `*-with-acl-dummy-keys.bin` captures of ali-ons and the C++ client, keys dummyAK/dummySK):
//! each decodes through the public frame decoder and its `Signature` verifies with
//! `acl_sign::verify`; a wrong key, a changed field or a changed body does not.

use std::path::PathBuf;

use rmq_net::codec::acl_sign::{self, Credentials};
use rmq_net::codec::frame;
use rmq_net::codec::limits::FrameLimits;
use rmq_net::RemotingCommand;

/// The captured clients' cross-check signature (wire-captures README).
const CROSS_CHECK_SIGNATURE: &str = "pPi4sewMarg+C+HTGAtkfpZ00UU=";

/// Every frame of one capture file.
fn frames(relative: &str) -> Vec<RemotingCommand> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/wire-captures")
        .join(relative);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("wire capture {} missing: {e}", path.display()));
    let mut rest = bytes.as_slice();
    let mut commands = Vec::new();
    while !rest.is_empty() {
        let (command, used) = frame::decode(rest, &FrameLimits::default())
            .expect("captured frame decodes")
            .expect("captured frame is complete");
        commands.push(command);
        rest = &rest[used..];
    }
    assert!(!commands.is_empty(), "{relative} holds frames");
    commands
}

#[test]
fn both_clients_signatures_verify_with_the_dummy_secret() {
    for capture in [
        "ali-ons/producer-get-route-with-acl-dummy-keys.bin",
        "rocketmq-cpp-py/producer-get-route-with-acl-dummy-keys.bin",
    ] {
        let all = frames(capture);
        assert_eq!(
            all[0].ext("Signature"),
            Some(CROSS_CHECK_SIGNATURE),
            "{capture}"
        );
        for request in &all {
            assert_eq!(request.ext("AccessKey"), Some("dummyAK"), "{capture}");
            let claimed = request.ext("Signature").expect("signed");
            assert!(
                acl_sign::verify(&request.ext_fields, &request.body, "dummySK", claimed),
                "{capture} opaque {}",
                request.opaque
            );
            assert_eq!(
                acl_sign::signature(&request.ext_fields, &request.body, "dummySK"),
                claimed
            );
        }
        let request = &all[0];
        let claimed = CROSS_CHECK_SIGNATURE;
        assert!(!acl_sign::verify(
            &request.ext_fields,
            &request.body,
            "dummySK2",
            claimed
        ));
        let mut changed = request.clone();
        changed.ext_fields.insert("topic", "TopicTest2");
        assert!(!acl_sign::verify(
            &changed.ext_fields,
            &changed.body,
            "dummySK",
            claimed
        ));
        let with_body = request.clone().with_body(&b"x"[..]);
        assert!(!acl_sign::verify(
            &with_body.ext_fields,
            &with_body.body,
            "dummySK",
            claimed
        ));
    }
}

#[test]
fn our_signer_reproduces_the_captured_signature() {
    let captured = frames("ali-ons/producer-get-route-with-acl-dummy-keys.bin").remove(0);
    let mut ours = captured.clone();
    ours.ext_fields.remove("Signature");
    ours.ext_fields.remove("AccessKey");
    acl_sign::sign(
        &mut ours,
        &Credentials {
            access_key: "dummyAK".into(),
            secret_key: "dummySK".into(),
            security_token: None,
        },
    );
    assert_eq!(ours.ext("Signature"), Some(CROSS_CHECK_SIGNATURE));
    assert_eq!(ours.ext_fields, captured.ext_fields);
}
