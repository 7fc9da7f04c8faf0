//! Black-box crash test of ASYNC_FLUSH's documented loss bound (docs/architecture.md,
//! "Durability hazards"): a process crash loses at most about `commitIntervalCommitLog` of
//! acknowledged messages, because appended bytes are written (O_DIRECT, no fdatasync) within
//! that interval even while an fdatasync is running.
//!
//! Producers send to a standalone broker with ASYNC_FLUSH, each acknowledgement recorded with
//! its queue offset and the time it arrived; the broker is SIGKILLed at a random moment and
//! restarted on the same store. An acknowledged message whose queue offset is at or past the
//! queue's recovered max offset was lost (a queue survives as a prefix: queue offsets follow
//! CommitLog order, and recovery keeps a prefix of the log). The loss window of a kill is the
//! time from the last surviving acknowledgement (or the first lost one, whichever is earlier)
//! to the last acknowledgement before the kill: every lost message was appended after the last
//! write the flusher completed, so the window is bounded by the commit interval plus the write's
//! own latency plus scheduling delay. Surviving messages are read back and compared with what
//! was sent.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    assert_code, block_on, call, create_topic, offset_of, properties, pull, queue_request,
    send_header, send_request, Broker, PullSpec,
};
use rand::{Rng, SeedableRng};
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::send::SendMessageResponseHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::conn::RemotingClient;

const TOPIC: &str = "AsyncCrash";
const QUEUES: i32 = 4;
/// Kills per run: enough to land some kills on an in-flight fdatasync (the flush interval is
/// 50 ms here, and an fdatasync takes a few ms on an SSD), small enough to stay under a minute.
const KILLS: usize = 10;
/// Concurrent senders: keeps appends arriving while the flusher writes and syncs.
const SENDERS: usize = 8;
/// `commitIntervalCommitLog` of the broker under test (the default).
const COMMIT_INTERVAL: Duration = Duration::from_millis(10);
/// `flushIntervalCommitLog` under test: 50 ms instead of 500 ms, so the ~1 s of sending before
/// each kill spans many fdatasyncs and the kill often lands while one is in flight.
const FLUSH_INTERVAL_MS: u64 = 50;
/// Slack allowed over the commit interval: the O_DIRECT write of what was appended (a few
/// 4 KiB–2 MiB writes, under a millisecond to a few ms), plus scheduling delays of the broker's
/// flusher task and of the test's own client thread on a shared 2-core machine running a debug
/// build, where a thread is routinely descheduled for 10–20 ms. Before the fix, writes waited
/// for each fdatasync, and kills during one lost up to commit interval + fdatasync time.
const SCHEDULING_SLACK: Duration = Duration::from_millis(40);
/// The whole test (restarts included) must finish within this.
const TEST_BUDGET: Duration = Duration::from_secs(60);
/// Kills that must stay within the bound. A kill landing while the machine starves the broker's
/// thread of CPU (seen: 81 ms once, with four builds sharing the 2-core CI machine) loses what
/// was appended during that wait too, which no broker can prevent; a flusher that waited for
/// something (an fdatasync, the flush interval) would exceed the bound on most kills.
const KILLS_WITHIN_BOUND_MIN: usize = KILLS * 8 / 10;
/// No kill may lose more than this whatever the machine does: well under the 500 ms
/// `flushIntervalCommitLog` default a flusher that only wrote when it synced would lose.
const LOSS_CEILING: Duration = Duration::from_millis(300);

/// One acknowledged send.
#[derive(Debug, Clone)]
struct Ack {
    seq: u64,
    queue_id: i32,
    queue_offset: i64,
    /// When the acknowledgement arrived.
    at: Instant,
}

fn body_of(seq: u64) -> Bytes {
    let mut body = format!("async-{seq:010}-").into_bytes();
    body.resize(
        body.len() + 200 + (seq % 7) as usize * 50,
        b'a' + (seq % 26) as u8,
    );
    Bytes::from(body)
}

fn seq_of(body: &[u8]) -> u64 {
    let text = std::str::from_utf8(&body[6..16]).expect("sequence digits");
    text.parse().expect("sequence number")
}

/// Sends until the broker stops answering; records every SUCCESS acknowledgement.
async fn sender(client: RemotingClient, first_seq: u64, stride: u64, acks: Rc<RefCell<Vec<Ack>>>) {
    let mut seq = first_seq;
    loop {
        let queue_id = i32::try_from(seq % QUEUES as u64).expect("small");
        let header = send_header(TOPIC, queue_id, &properties(None, None, None));
        let request = send_request(RequestCode::SendMessageV2, &header, body_of(seq));
        let Ok(reply) = client.invoke(request, Duration::from_secs(2)).await else {
            return; // the broker is gone
        };
        let at = Instant::now();
        if reply.response_code() != ResponseCode::Success {
            return;
        }
        let header = SendMessageResponseHeader::decode_command(&reply).expect("send header");
        assert_eq!(header.queue_id, queue_id);
        acks.borrow_mut().push(Ack {
            seq,
            queue_id,
            queue_offset: header.queue_offset,
            at,
        });
        seq += stride;
    }
}

/// Max offset of every queue.
async fn max_offsets(client: &RemotingClient) -> BTreeMap<i32, i64> {
    let mut offsets = BTreeMap::new();
    for queue_id in 0..QUEUES {
        let reply = call(
            client,
            queue_request(RequestCode::GetMaxOffset, TOPIC, queue_id),
        )
        .await;
        offsets.insert(queue_id, offset_of(&reply));
    }
    offsets
}

/// Reads `[from, to)` of a queue and checks every record is the acknowledged message with
/// that offset (or, for offsets nobody saw acknowledged, any message of this run).
async fn verify_survivors(
    client: &RemotingClient,
    queue_id: i32,
    from: i64,
    to: i64,
    acked: &BTreeMap<i64, u64>,
) {
    let mut offset = from;
    while offset < to {
        let mut spec = PullSpec::new(TOPIC, queue_id, offset);
        spec.max = 256;
        let reply = pull(client, &spec).await;
        assert_eq!(
            reply.code,
            ResponseCode::Success,
            "queue {queue_id} at {offset}"
        );
        for record in &reply.records {
            assert_eq!(record.queue_offset, offset);
            let seq = seq_of(&record.body);
            assert_eq!(
                record.body,
                body_of(seq),
                "body of message {seq} byte for byte"
            );
            if let Some(&want) = acked.get(&offset) {
                assert_eq!(seq, want, "queue {queue_id} offset {offset}");
            }
            offset += 1;
        }
    }
}

/// What one kill lost.
#[derive(Debug)]
struct Loss {
    acked: usize,
    lost: usize,
    /// From the first lost acknowledgement to the last acknowledgement (zero if none lost).
    from_first_lost: Duration,
    /// From the last surviving acknowledgement to the last acknowledgement (the issue's
    /// measure; zero if none lost).
    from_last_survivor: Duration,
}

impl Loss {
    /// The loss window: the larger of the two measures (they differ by the ordering of acks
    /// of different queues around the cut).
    fn window(&self) -> Duration {
        self.from_first_lost.max(self.from_last_survivor)
    }
}

fn loss_of(acks: &[Ack], recovered: &BTreeMap<i32, i64>) -> Loss {
    let last = acks
        .iter()
        .map(|ack| ack.at)
        .max()
        .expect("acknowledged messages");
    let is_lost = |ack: &&Ack| ack.queue_offset >= recovered[&ack.queue_id];
    let first_lost = acks.iter().filter(is_lost).map(|ack| ack.at).min();
    let last_survivor = acks.iter().filter(|a| !is_lost(a)).map(|ack| ack.at).max();
    Loss {
        acked: acks.len(),
        lost: acks.iter().filter(is_lost).count(),
        from_first_lost: first_lost.map_or(Duration::ZERO, |first| last - first),
        from_last_survivor: match (first_lost, last_survivor) {
            (None, _) => Duration::ZERO,
            (Some(first), None) => last - first,
            (Some(_), Some(survivor)) => last.saturating_duration_since(survivor),
        },
    }
}

/// One round: send from `SENDERS` tasks, SIGKILL after `run_for`, restart, measure the loss.
fn kill_round(broker: &mut Broker, run_for: Duration, first_seq: u64) -> Loss {
    let addr = broker.addr;
    let before = block_on(async { max_offsets(&broker.client()).await });
    let senders = std::thread::spawn(move || {
        block_on(async move {
            let acks = Rc::new(RefCell::new(Vec::new()));
            let client = RemotingClient::new(addr.to_string(), Default::default());
            let tasks = (0..SENDERS as u64).map(|lane| {
                sender(
                    client.clone(),
                    first_seq + lane,
                    SENDERS as u64,
                    Rc::clone(&acks),
                )
            });
            futures_util::future::join_all(tasks).await;
            Rc::try_unwrap(acks).expect("senders done").into_inner()
        })
    });
    std::thread::sleep(run_for);
    broker.kill_and_restart();
    let acks = senders.join().expect("sender thread");
    assert!(
        !acks.is_empty(),
        "messages were acknowledged before the kill"
    );
    block_on(async {
        let client = broker.client();
        let recovered = max_offsets(&client).await;
        for queue_id in 0..QUEUES {
            let acked: BTreeMap<i64, u64> = acks
                .iter()
                .filter(|ack| ack.queue_id == queue_id)
                .map(|ack| (ack.queue_offset, ack.seq))
                .collect();
            assert!(
                recovered[&queue_id] >= before[&queue_id],
                "messages stored before the round are kept"
            );
            verify_survivors(
                &client,
                queue_id,
                before[&queue_id],
                recovered[&queue_id],
                &acked,
            )
            .await;
        }
        loss_of(&acks, &recovered)
    })
}

#[test]
fn async_flush_kill_loses_at_most_the_commit_interval() {
    let started = Instant::now();
    let mut broker = Broker::start(
        1,
        &format!(
            "flushDiskType=ASYNC_FLUSH\ncommitIntervalCommitLog={}\nflushIntervalCommitLog={FLUSH_INTERVAL_MS}",
            COMMIT_INTERVAL.as_millis()
        ),
    );
    block_on(async {
        create_topic(&broker.client(), TOPIC, QUEUES, 6).await;
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_ca11);
    let mut losses = Vec::new();
    let mut next_seq = 0;
    for kill in 0..KILLS {
        let run_for = Duration::from_millis(rng.gen_range(300..1_200));
        let loss = kill_round(&mut broker, run_for, next_seq);
        next_seq += 10_000_000;
        eprintln!(
            "kill {kill}: after {run_for:?}: {} acknowledged, {} lost, window {:?} (from the first lost {:?}, from the last survivor {:?})",
            loss.acked, loss.lost, loss.window(), loss.from_first_lost, loss.from_last_survivor
        );
        losses.push(loss);
        assert!(started.elapsed() < TEST_BUDGET, "test over its time budget");
    }
    let worst = losses.iter().map(Loss::window).max().expect("kills");
    let lost: usize = losses.iter().map(|loss| loss.lost).sum();
    let acked: usize = losses.iter().map(|loss| loss.acked).sum();
    eprintln!("worst loss window {worst:?}; {lost} of {acked} acknowledged messages lost");
    let bound = COMMIT_INTERVAL + SCHEDULING_SLACK;
    let within = losses.iter().filter(|loss| loss.window() <= bound).count();
    assert!(
        within >= KILLS_WITHIN_BOUND_MIN,
        "only {within} of {KILLS} kills lost at most {COMMIT_INTERVAL:?} + {SCHEDULING_SLACK:?}"
    );
    assert!(
        worst <= LOSS_CEILING,
        "a kill lost {worst:?} of acknowledged messages (ceiling {LOSS_CEILING:?})"
    );
    // The queues continue after the last restart.
    block_on(async {
        let client = broker.client();
        let header = send_header(TOPIC, 0, &properties(None, None, None));
        let reply = call(
            &client,
            send_request(RequestCode::SendMessageV2, &header, body_of(next_seq)),
        )
        .await;
        assert_code(&reply, ResponseCode::Success);
    });
}
