//! `RemotingCommand`: one request or response, independent of its header encoding.
//! Owns no I/O; [`crate::codec::frame`] turns it into bytes and back.

use bytes::Bytes;

use super::codes::{LanguageCode, RequestCode, ResponseCode, SerializeType, SERVER_VERSION};

/// The "custom header": every request/response header field as text (PROTOCOL.md §1.3).
/// Sorted, as fastjson writes it, so encoding is deterministic.
pub use super::ext_fields::ExtFields;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 0b01;
/// Flag bit 1: this request expects no response.
pub const FLAG_ONEWAY: i32 = 0b10;

/// One remoting command (PROTOCOL.md §1.3). `code` is a request code in requests and a
/// response code in responses; use [`Self::request_code`] / [`Self::response_code`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request or response code.
    pub code: i32,
    /// Sender's language.
    pub language: LanguageCode,
    /// Sender's `MQVersion` ordinal.
    pub version: i32,
    /// Request id; a response echoes it.
    pub opaque: i32,
    /// Bit 0 response, bit 1 oneway.
    pub flag: i32,
    /// Optional human-readable text (errors).
    pub remark: Option<String>,
    /// Custom header fields as text.
    pub ext_fields: ExtFields,
    /// Body bytes; empty means no body.
    pub body: Bytes,
    /// Header encoding this command came in or goes out with.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with the given code and fields, JSON-encoded, language Rust.
    #[must_use]
    pub fn request(code: RequestCode, ext_fields: ExtFields) -> Self {
        Self {
            code: code.value(),
            language: LanguageCode::Rust,
            version: SERVER_VERSION,
            ext_fields,
            ..Self::default()
        }
    }

    /// A response to `request`: same opaque and serialize type, flag = RESPONSE, our version.
    #[must_use]
    pub fn response_to(request: &Self, code: ResponseCode) -> Self {
        Self {
            code: code.value(),
            language: LanguageCode::Java,
            version: SERVER_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            serialize_type: request.serialize_type,
            ..Self::default()
        }
    }

    /// Builder: set the remark.
    #[must_use]
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Builder: set the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Builder: set the extFields.
    #[must_use]
    pub fn with_ext_fields(mut self, ext_fields: ExtFields) -> Self {
        self.ext_fields = ext_fields;
        self
    }

    /// Builder: set the opaque.
    #[must_use]
    pub fn with_opaque(mut self, opaque: i32) -> Self {
        self.opaque = opaque;
        self
    }

    /// This response made the answer to the request with `opaque` and `serialize_type`: the
    /// request's opaque and encoding, flag RESPONSE (never ONEWAY). What a server connection
    /// does to every handler's response, and what a handler answering later through the
    /// connection's handle must do itself.
    #[must_use]
    pub fn answering(mut self, opaque: i32, serialize_type: SerializeType) -> Self {
        self.opaque = opaque;
        self.flag = (self.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
        self.serialize_type = serialize_type;
        self
    }

    /// Builder: mark as oneway.
    #[must_use]
    pub fn oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// Whether flag bit 0 is set.
    #[must_use]
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether flag bit 1 is set (only meaningful on requests).
    #[must_use]
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// The code read as a request code.
    #[must_use]
    pub fn request_code(&self) -> RequestCode {
        RequestCode::from_value(self.code)
    }

    /// The code read as a response code.
    #[must_use]
    pub fn response_code(&self) -> ResponseCode {
        ResponseCode::from_value(self.code)
    }

    /// One extField, if present.
    #[must_use]
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }
}
