//! Sans-io remoting codec. No sockets, no async, no runtime, no logging, no `unsafe`.
//!
//! Map: [`frame`] (length words, `check` then `decode`), [`header_json`] and [`header_binary`]
//! (the two header encodings), [`command`] (`RemotingCommand`), [`ext_fields`] (its custom header text), [`codes`] (request, response
//! and language codes), [`header`] (typed custom headers <-> extFields), [`body`] (JSON bodies),
//! [`message`] (properties, sysFlag, stored records, batch bodies, msgIds, tag hash),
//! [`limits`] (every bound, named once), [`error`], [`acl_sign`] (ACL request signatures),
//! [`sql92`] (the SQL92 message selector: parse, print, evaluate on properties).

pub mod acl_sign;
pub mod body;
pub mod codes;
pub mod command;
pub mod error;
pub mod ext_fields;
pub mod frame;
pub mod header;
pub mod header_binary;
pub mod header_json;
pub mod limits;
pub mod message;
pub mod sql92;
