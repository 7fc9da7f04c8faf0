//! A slave restarted as master on its own store with pending timers (docs/timer.md, "Known
//! limits"): the slave replicated the timer queue, rolled copies included, but no wheel
//! progress. The promoted broker schedules every retained copy again: the pending long timer
//! (rolled on the old master) is delivered once, at its time, its pre-promotion roll not
//! repeated; the short timer the old master already delivered is delivered a second time (the
//! documented cost of not replicating the wheel).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    block_on, create_topic, free_port, props, send_v2, sent, start_namesrv, timer_status, Server,
    TempDir,
};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::{keys, MessageRecord, Properties};
use rmq_net::conn::{ClientConfig, RemotingClient};

const TOPIC: &str = "TimerPromoted";
const ROLL: &str = "timerRollWindowSlot=2\nflushDiskType=SYNC_FLUSH";
const LONG_DELAY_MS: i64 = 16_000;

/// One broker process; its store and conf survive restarts.
struct Node {
    dir: TempDir,
    conf: PathBuf,
    server: Option<Server>,
}

impl Node {
    fn start(namesrv: SocketAddr, role: &str, id: u8) -> Self {
        let dir = TempDir::new(if id == 0 { "master" } else { "slave" });
        let conf = Self::write_conf(&dir, namesrv, role, id);
        let mut node = Self {
            dir,
            conf,
            server: None,
        };
        node.restart();
        node
    }

    fn write_conf(dir: &TempDir, namesrv: SocketAddr, role: &str, id: u8) -> PathBuf {
        common::write_broker_conf(
            dir.path(),
            &format!(
                "brokerRole={role}\nbrokerId={id}\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
                 namesrvAddr={namesrv}\nstorePathRootDir={}\nlistenPort={}\nhaListenPort={}\n\
                 {ROLL}\n",
                dir.path().join("store").display(),
                free_port(),
                free_port()
            ),
        )
    }

    fn restart(&mut self) {
        let conf = self.conf.to_str().expect("utf-8").to_owned();
        self.server = Some(Server::start_logged(
            &["broker", "-c", &conf, "--shards", "1"],
            1,
            Some("info"),
        ));
    }

    fn client(&self) -> RemotingClient {
        let addr = self.server.as_ref().expect("running").addr("broker");
        RemotingClient::new(addr.to_string(), ClientConfig::default())
    }

    fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }
}

async fn queue_records(client: &RemotingClient, queue_id: i32) -> Vec<MessageRecord> {
    common::all_records(client, TOPIC, 2)
        .await
        .swap_remove(usize::try_from(queue_id).expect("small"))
}

/// Waits until `check` holds, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_promoted_slave_delivers_pending_timers_once_and_delivered_ones_again() {
    let ns_dir = TempDir::new("ns");
    let namesrv = start_namesrv(&ns_dir);
    let ns_addr = namesrv.addr("namesrv");
    let mut master = Node::start(ns_addr, "SYNC_MASTER", 0);
    let mut slave = Node::start(ns_addr, "SLAVE", 1);
    let sent_at = common::now_ms();
    let due = sent_at + LONG_DELAY_MS;
    block_on(async {
        let client = master.client();
        create_topic(&client, TOPIC, 2, 6).await;
        create_topic(&client, "Warmup", 1, 6).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        // SYNC_MASTER answers SUCCESS once the slave acknowledged: wait for the slave first.
        loop {
            let reply = send_v2(&client, "Warmup", 0, b"w", &Properties::new()).await;
            if reply.response_code() == ResponseCode::Success {
                break;
            }
            assert!(Instant::now() < deadline, "the slave never acknowledged");
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        let long = LONG_DELAY_MS.to_string();
        for (queue_id, delay, body) in [(0, "1500", "short"), (1, long.as_str(), "long")] {
            let properties = props(&[(keys::TIMER_DELAY_MS, delay), ("user", "u")]);
            let reply = send_v2(&client, TOPIC, queue_id, body.as_bytes(), &properties).await;
            common::assert_code(&reply, ResponseCode::Success);
            sent(&reply, body.as_bytes());
        }
        eventually(
            Duration::from_secs(20),
            "short delivered and long rolled",
            || async {
                let status = timer_status(&client).await;
                let rolled: u64 = status.shards.iter().map(|s| s.rolled_since_start).sum();
                rolled >= 1 && queue_records(&client, 0).await.len() == 1
            },
        )
        .await;
    });
    let slave_client = slave.client();
    block_on(async {
        let master_client = master.client();
        common::slave_equals_master(
            &master_client,
            &slave_client,
            TOPIC,
            2,
            Duration::from_secs(20),
        )
        .await;
    });
    // The rolled copy reached the slave too (replication is asynchronous for internal writes).
    std::thread::sleep(Duration::from_secs(1));
    master.kill();
    slave.kill();
    slave.conf = Node::write_conf(&slave.dir, ns_addr, "ASYNC_MASTER", 0);
    slave.restart();
    block_on(async {
        let client = slave.client();
        eventually(
            Duration::from_secs(40),
            "the long timer delivered",
            || async { !queue_records(&client, 1).await.is_empty() },
        )
        .await;
        // Two more roll windows: a repeated roll would have delivered a second copy by now.
        compio::time::sleep(Duration::from_secs(4)).await;
        let long = queue_records(&client, 1).await;
        assert_eq!(long.len(), 1, "the pending timer is delivered once");
        assert_eq!(long[0].body, b"long".as_slice());
        assert!(long[0].store_timestamp >= due, "not before its time");
        assert_eq!(long[0].properties.get("user"), Some("u"));
        let short = queue_records(&client, 0).await;
        assert_eq!(
            short.len(),
            2,
            "the old master's delivery (replicated) and the promoted broker's second one"
        );
        let status = timer_status(&client).await;
        assert_eq!(status.pending, 0, "{status:?}");
        eprintln!(
            "promoted: rolls not repeated {}",
            status
                .shards
                .iter()
                .map(|s| s.rolls_deduplicated_since_start)
                .sum::<u64>()
        );
    });
}
