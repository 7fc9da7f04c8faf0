//! A bounds-checked big-endian cursor over a byte slice, shared by the record and batch
//! decoders. Every read checks the remaining length first and reports the absolute offset
//! (`base` + position) on failure; it never panics and never allocates.

use super::super::error::CodecError;

/// Cursor over `buf`; offsets in errors are `base + pos`.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the front of `buf`, which sits at `base` in the caller's larger buffer.
    pub(super) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Bytes consumed so far.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Absolute offset of the next byte.
    pub(super) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Takes `len` bytes.
    pub(super) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(CodecError::Truncated {
                what,
                offset: self.offset(),
                need: len,
                have: self.remaining(),
            });
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Takes exactly `N` bytes as an array.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(super) fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(super) fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(super) fn i64(&mut self, what: &'static str) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Checks a signed length field (already read as `raw` at `field_offset`): non-negative
    /// and at most `max`.
    pub(super) fn length(
        raw: i64,
        field_offset: usize,
        max: usize,
        what: &'static str,
    ) -> Result<usize, CodecError> {
        usize::try_from(raw)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(CodecError::Length {
                what,
                offset: field_offset,
                len: raw,
                max,
            })
    }

    /// Reads an IP (16 bytes if `v6`, else 4) and an i32 port, as the stored record lays out
    /// BORNHOST and STOREHOSTADDRESS. A port outside `0..=65535` is an error (Java's
    /// `InetSocketAddress` refuses it too).
    pub(super) fn socket_addr(
        &mut self,
        v6: bool,
        what: &'static str,
    ) -> Result<std::net::SocketAddr, CodecError> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
        let ip = if v6 {
            std::net::IpAddr::V6(Ipv6Addr::from(self.array::<16>(what)?))
        } else {
            std::net::IpAddr::V4(Ipv4Addr::from(self.array::<4>(what)?))
        };
        let port_offset = self.offset();
        let port = self.i32(what)?;
        let port = u16::try_from(port).map_err(|_| CodecError::InvalidField {
            field: what,
            value: format!("port {port} at offset {port_offset}"),
        })?;
        Ok(SocketAddr::new(ip, port))
    }
}
