//! Black-box tests of plain ACL (`aclEnable=true`, `plain_acl.yml`), each with 1 and 2 shards,
//! driven by our client signing with `rmq_net::codec::acl_sign`: a permitted account sends and
//! pulls; a wrong secret, an unknown or missing access key, a topic without PUB, an admin code
//! from a non-admin all get NO_PERMISSION (16) with a remark saying what was missing, on a
//! connection that keeps serving; oneway refusals get no reply; the NameServer's routes stay
//! readable unsigned; the file is reloaded when it changes, and a bad file keeps the
//! configuration in force; no secret reaches the log; `rmq admin` signs with the credentials in
//! its environment.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    assert_code, await_route, block_on, call, create_topic_request, properties, send_header,
    send_request, topic_route, Broker, PullSpec, RawConn, TempDir,
};
use rmq_net::codec::acl_sign::{self, Credentials};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::conn::RemotingClient;
use rmq_net::RemotingCommand;

/// Longest wait for a reload to show (the broker polls every second).
const RELOAD_WAIT: Duration = Duration::from_secs(20);

const PRODUCER: (&str, &str) = ("producerAK", "producer-secret-1");
const ADMIN: (&str, &str) = ("adminAK01", "admin-secret-1");

/// `producerAK` may publish to `acl_orders` (and subscribe to it), only subscribe to
/// `acl_audit`, nothing else; `adminAK01` is an admin.
fn acl_file(orders_perm: &str) -> String {
    format!(
        r#"globalWhiteRemoteAddresses:
accounts:
  - accessKey: {producer}
    secretKey: {producer_secret}
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - acl_orders={orders_perm}
      - acl_audit=SUB
  - accessKey: {admin}
    secretKey: {admin_secret}
    admin: true
"#,
        producer = PRODUCER.0,
        producer_secret = PRODUCER.1,
        admin = ADMIN.0,
        admin_secret = ADMIN.1,
    )
}

fn write_acl(path: &Path, text: &str) {
    // Write a sibling and rename, so the broker never reads half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write ACL file");
    std::fs::rename(&partial, path).expect("install ACL file");
}

fn start(shards: usize, acl_dir: &TempDir, orders_perm: &str) -> (Broker, PathBuf) {
    let path = acl_dir.path().join("plain_acl.yml");
    write_acl(&path, &acl_file(orders_perm));
    let conf = format!("aclEnable=true\naclFile={}\n", path.display());
    (Broker::start_logged(shards, &conf, Some("debug")), path)
}

fn signed(mut request: RemotingCommand, (access_key, secret_key): (&str, &str)) -> RemotingCommand {
    acl_sign::sign(
        &mut request,
        &Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        },
    );
    request
}

fn send(topic: &str, body: &'static [u8]) -> RemotingCommand {
    send_request(
        RequestCode::SendMessageV2,
        &send_header(topic, 0, &properties(None, None, None)),
        Bytes::from_static(body),
    )
}

#[track_caller]
fn assert_refused(reply: &RemotingCommand, remark_part: &str) {
    assert_code(reply, ResponseCode::NoPermission);
    let remark = reply.remark.as_deref().unwrap_or_default();
    assert!(
        remark.contains(remark_part),
        "remark {remark:?} lacks {remark_part:?}"
    );
    assert!(
        !remark.contains(PRODUCER.1) && !remark.contains(ADMIN.1),
        "{remark}"
    );
}

async fn create_topics(client: &RemotingClient) {
    for topic in ["acl_orders", "acl_audit"] {
        let reply = call(client, signed(create_topic_request(topic, 2, 6), ADMIN)).await;
        assert_code(&reply, ResponseCode::Success);
    }
}

#[test]
fn a_permitted_account_sends_and_pulls_and_every_refusal_says_why() {
    for shards in [1, 2] {
        let acl_dir = TempDir::new("acl");
        let (broker, _path) = start(shards, &acl_dir, "PUB|SUB");
        let client = broker.client();
        block_on(async {
            create_topics(&client).await;
            let by_producer = signed(create_topic_request("acl_new", 2, 6), PRODUCER);
            assert_refused(
                &call(&client, by_producer).await,
                "Need admin permission for request code=17",
            );

            let sent = call(&client, signed(send("acl_orders", b"one"), PRODUCER)).await;
            assert_code(&sent, ResponseCode::Success);

            let wrong_secret = signed(send("acl_orders", b"x"), (PRODUCER.0, "not-the-secret"));
            assert_refused(
                &call(&client, wrong_secret).await,
                "Check signature failed for accessKey=producerAK",
            );
            assert_refused(
                &call(&client, send("acl_orders", b"x")).await,
                "No accessKey",
            );
            let stranger = signed(send("acl_orders", b"x"), ("strangerAK", "whatever-1"));
            assert_refused(
                &call(&client, stranger).await,
                "No acl config for strangerAK",
            );
            let no_pub = signed(send("acl_audit", b"x"), PRODUCER);
            assert_refused(&call(&client, no_pub).await, "topic:acl_audit");
            let undeclared = signed(send("acl_other", b"x"), PRODUCER);
            assert_refused(&call(&client, undeclared).await, "defaultTopicPerm");

            // The same connection still serves a good request after the refusals.
            let again = call(&client, signed(send("acl_orders", b"two"), PRODUCER)).await;
            assert_code(&again, ResponseCode::Success);

            let spec = PullSpec::new("acl_orders", 0, 0);
            let pulled = pull_signed(&client, &spec, PRODUCER).await;
            assert_eq!(pulled.code, ResponseCode::Success, "shards={shards}");
            let bodies: Vec<&[u8]> = pulled.records.iter().map(|r| &r.body[..]).collect();
            assert_eq!(bodies, [&b"one"[..], b"two"], "shards={shards}");
            let unsigned = call(&client, spec.request()).await;
            assert_refused(&unsigned, "No accessKey");

            // The NameServer does not check ACL: routes stay readable unsigned.
            let route = topic_route(&broker.namesrv_client(), "acl_orders").await;
            assert!(route.is_some(), "shards={shards}: route readable");
        });
        assert!(
            broker
                .server
                .log_lines_with(&["ACL refused a request"])
                .len()
                >= 5,
            "refusals are logged"
        );
        assert_no_secret_logged(&broker);
    }
}

async fn pull_signed(
    client: &RemotingClient,
    spec: &PullSpec<'_>,
    account: (&str, &str),
) -> common::Pulled {
    common::pulled(&call(client, signed(spec.request(), account)).await)
}

fn assert_no_secret_logged(broker: &Broker) {
    for secret in [PRODUCER.1, ADMIN.1] {
        assert!(
            broker.server.log_lines_with(&[secret]).is_empty(),
            "a secret key reached the log"
        );
    }
}

#[test]
fn a_refused_oneway_request_gets_no_reply_and_the_connection_stays() {
    for shards in [1, 2] {
        let acl_dir = TempDir::new("acl");
        let (broker, _path) = start(shards, &acl_dir, "PUB|SUB");
        block_on(create_topics(&broker.client()));
        let mut conn = RawConn::connect(broker.addr);
        conn.send(&send("acl_orders", b"x").oneway().with_opaque(7));
        conn.send(&signed(send("acl_orders", b"y"), PRODUCER).with_opaque(8));
        let reply = conn
            .read(Duration::from_secs(10))
            .expect("a reply to the signed send");
        assert_eq!(
            reply.opaque, 8,
            "shards={shards}: no reply to the refused oneway"
        );
        assert_code(&reply, ResponseCode::Success);
    }
}

/// Sends a signed message to `acl_orders` until the reply has `code` or [`RELOAD_WAIT`] ends.
async fn wait_for_send_code(client: &RemotingClient, code: ResponseCode) -> RemotingCommand {
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        let reply = call(client, signed(send("acl_orders", b"r"), PRODUCER)).await;
        if reply.response_code() == code || Instant::now() > deadline {
            return reply;
        }
        compio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_acl_file_is_reloaded_and_a_bad_file_keeps_the_configuration_in_force() {
    for shards in [1, 2] {
        let acl_dir = TempDir::new("acl");
        let (broker, path) = start(shards, &acl_dir, "SUB");
        let client = broker.client();
        block_on(async {
            create_topics(&client).await;
            let refused = call(&client, signed(send("acl_orders", b"r"), PRODUCER)).await;
            assert_refused(&refused, "topic:acl_orders");

            write_acl(&path, &acl_file("PUB"));
            let granted = wait_for_send_code(&client, ResponseCode::Success).await;
            assert_code(&granted, ResponseCode::Success);

            // A broken file is refused; what is in force stays.
            write_acl(
                &path,
                &format!("{}\n  - this is: [not valid", acl_file("DENY")),
            );
            let deadline = Instant::now() + RELOAD_WAIT;
            while broker
                .server
                .log_lines_with(&["ACL file not reloaded"])
                .is_empty()
            {
                assert!(Instant::now() < deadline, "the bad file was never reported");
                compio::time::sleep(Duration::from_millis(100)).await;
            }
            let still = call(&client, signed(send("acl_orders", b"s"), PRODUCER)).await;
            assert_code(&still, ResponseCode::Success);

            // Fixing the file takes effect again: PUB withdrawn.
            write_acl(&path, &acl_file("SUB"));
            let withdrawn = wait_for_send_code(&client, ResponseCode::NoPermission).await;
            assert_refused(&withdrawn, "topic:acl_orders");
        });
        assert!(
            broker
                .server
                .log_lines_with(&["ACL file reloaded on every shard"])
                .len()
                >= 2,
            "shards={shards}: both good rewrites were published"
        );
        assert_no_secret_logged(&broker);
    }
}

/// `rmq admin update-topic` against `broker` with `credentials` in the environment (or none):
/// whether it succeeded, and its stderr.
fn admin_update_topic(broker: &Broker, credentials: Option<(&str, &str)>) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rmq"));
    command
        .args(["admin", "update-topic", "-n"])
        .arg(broker.namesrv.to_string())
        .arg("-b")
        .arg(broker.addr.to_string())
        .args(["-t", "acl_cli"])
        .env_remove("RMQ_ACCESS_KEY")
        .env_remove("RMQ_SECRET_KEY")
        .env_remove("RMQ_SECURITY_TOKEN");
    if let Some((access_key, secret_key)) = credentials {
        command
            .env("RMQ_ACCESS_KEY", access_key)
            .env("RMQ_SECRET_KEY", secret_key);
    }
    let output = command.output().expect("run rmq admin");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_admin_cli_signs_with_the_credentials_in_its_environment() {
    let acl_dir = TempDir::new("acl");
    let (broker, _path) = start(1, &acl_dir, "SUB");
    let (ok, stderr) = admin_update_topic(&broker, None);
    assert!(!ok && stderr.contains("No accessKey"), "unsigned: {stderr}");
    let (ok, stderr) = admin_update_topic(&broker, Some(PRODUCER));
    assert!(
        !ok && stderr.contains("Need admin permission for request code=17"),
        "not an admin: {stderr}"
    );
    let (ok, stderr) = admin_update_topic(&broker, Some(ADMIN));
    assert!(ok, "admin: {stderr}");
    // The topic was created: its route appears (await_route fails the test otherwise).
    block_on(await_route(
        &broker.namesrv_client(),
        "acl_cli",
        Option::is_some,
    ));
}

#[test]
fn the_broker_does_not_start_with_an_invalid_acl_file_and_says_why() {
    let dir = TempDir::new("acl-bad");
    let acl = dir.path().join("plain_acl.yml");
    // A wrong permission word; the secret must not appear in the error.
    let text = acl_file("PUBLISH");
    write_acl(&acl, &text);
    let conf = common::write_broker_conf(
        dir.path(),
        &format!("aclEnable=true\naclFile={}", acl.display()),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args([
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            "0",
            "--store-dir",
        ])
        .arg(dir.path().join("store"))
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rmq");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait rmq") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rmq kept running with an invalid ACL file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("plain_acl.yml") && stderr.contains("acl_orders=PUBLISH"),
        "the error names the file and the item: {stderr}"
    );
    assert!(
        !stderr.contains(PRODUCER.1) && !stderr.contains(ADMIN.1),
        "{stderr}"
    );
}
