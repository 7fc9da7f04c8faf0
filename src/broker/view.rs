//! VIEW_MESSAGE_BY_ID (33) on the shard that owns the physical offset (its shard bits): the
//! record read back from the CommitLog (disk or tail ring) and served as a pull would serve it.
//!
//! Must never: read an offset another shard owns (the dispatcher routes by the shard bits), or
//! answer anything but the record that starts at the offset.

use bytes::BytesMut;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::query::ViewMessageRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

use crate::runtime::placement::split_offset;

use super::message::serve_record;
use super::shard::Shard;
use super::{success, Failure, Outcome};

/// Serves VIEW_MESSAGE_BY_ID.
pub async fn process(shard: &Shard, request: &RemotingCommand) -> Outcome {
    let header = ViewMessageRequestHeader::decode_command(request)?;
    let not_found = || {
        Failure::Code(
            ResponseCode::SystemError,
            format!("can not find message by the offset, {}", header.offset),
        )
    };
    let (owner, local) = split_offset(header.offset).ok_or_else(not_found)?;
    assert_eq!(
        owner, shard.id,
        "VIEW_MESSAGE_BY_ID routed to the wrong shard"
    );
    let record = shard
        .store
        .read_by_phys_offset(u64::try_from(local).map_err(|_| not_found())?)
        .await
        .map_err(|_| not_found())?;
    let mut body = BytesMut::with_capacity(record.payload.len());
    serve_record(&mut body, &record, shard.id)?;
    Ok(success(request).with_body(body.freeze()))
}
