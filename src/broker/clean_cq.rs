//! CLEAN_EXPIRED_CONSUMEQUEUE (306; `rmq admin clean-expired-cq`, mqadmin cleanExpiredCQ):
//! every shard applies its CommitLog's current start to its consume queues and index now
//! ([`rmq_storage::store::Store::clean_expired_queues`]), instead of at its next retention
//! pass. Queues keep their offsets (Java destroys fully expired queues, restarting their
//! offsets at 0; consumers here never see an offset move back).
//! Must never: delete a consume queue, or touch a queue's max offset.

use std::rc::Rc;

use rmq_net::RemotingCommand;

use super::shard::Shard;
use super::{storage_failure, success, Outcome};

/// Processes CLEAN_EXPIRED_CONSUMEQUEUE on the accepting shard (a map over every shard).
/// SUCCESS with the per-shard counts in the remark (Java's reply has no body).
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let results = super::stats::map_shards(shard, |owner: Rc<Shard>| async move {
        owner.store.clean_expired_queues().await
    })
    .await?;
    let mut parts = Vec::with_capacity(results.len());
    for (index, result) in results.into_iter().enumerate() {
        let cleaned = result.map_err(|err| storage_failure(&err))?;
        parts.push(format!(
            "shard{index}: commitLogMin={} queuesRaised={} indexFilesRemoved={}",
            cleaned.commitlog_min, cleaned.queues_raised, cleaned.index_files_removed
        ));
    }
    tracing::info!(cleaned = %parts.join("; "), "clean expired consume queues");
    let mut response = success(request);
    response.remark = Some(parts.join("; "));
    Ok(response)
}
