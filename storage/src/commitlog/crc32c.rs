//! CRC-32C (Castagnoli), the record checksum: the SSE4.2 `crc32` instruction when the CPU has it
//! (detected once), else a table. Pure; no I/O.
//!
//! Owns [`Crc32c`]. Chosen over CRC-32 (IEEE) because records are often a few hundred bytes, where
//! the hardware instruction has no setup cost while table or carry-less-multiply CRC-32 code is
//! dominated by it. Must never: give different results on the two paths (a test compares them).

use std::sync::OnceLock;

/// Reflected CRC-32C polynomial.
const POLYNOMIAL: u32 = 0x82F6_3B78;

/// Byte-wise lookup table for the software path, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// Streaming CRC-32C: `update` with consecutive pieces, then `finalize`.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c {
    /// Running register (pre-inverted).
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A fresh checksum.
    #[must_use]
    pub fn new() -> Self {
        Self { state: !0 }
    }

    /// Adds `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        self.state = if hardware_available() {
            // SAFETY: `hardware_available` confirmed SSE4.2 on this CPU.
            unsafe { update_sse42(self.state, data) }
        } else {
            update_table(self.state, data)
        };
    }

    /// The checksum of everything added.
    #[must_use]
    pub fn finalize(self) -> u32 {
        !self.state
    }

    /// CRC-32C of `data` in one call.
    #[must_use]
    pub fn checksum(data: &[u8]) -> u32 {
        let mut crc = Self::new();
        crc.update(data);
        crc.finalize()
    }
}

fn hardware_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("sse4.2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

fn update_table(mut state: u32, data: &[u8]) -> u32 {
    for byte in data {
        state = TABLE[((state ^ u32::from(*byte)) & 0xFF) as usize] ^ (state >> 8);
    }
    state
}

/// # Safety
/// The CPU must support SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(state: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut wide = u64::from(state);
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let value = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        // SAFETY: this function is only called after SSE4.2 was detected (see `update`).
        // (`unsafe` is redundant inside `target_feature` code on newer compilers, needed on 1.85.)
        #[allow(unused_unsafe)]
        let next = unsafe { _mm_crc32_u64(wide, value) };
        wide = next;
    }
    let mut narrow = wide as u32;
    for byte in words.remainder() {
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let next = unsafe { _mm_crc32_u8(narrow, *byte) };
        narrow = next;
    }
    narrow
}

/// # Safety
/// Always safe (no hardware path on this target).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn update_sse42(state: u32, data: &[u8]) -> u32 {
    update_table(state, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(Crc32c::checksum(b"123456789"), 0xE306_9283);
        assert_eq!(Crc32c::checksum(b""), 0);
        assert_eq!(Crc32c::checksum(&[0u8; 32]), 0x8A91_36AA);
    }

    proptest! {
        #[test]
        fn hardware_table_and_streaming_agree(data in proptest::collection::vec(any::<u8>(), 0..700), split in any::<prop::sample::Index>()) {
            let table = !update_table(!0, &data);
            prop_assert_eq!(Crc32c::checksum(&data), table);
            let cut = split.index(data.len() + 1);
            let mut streamed = Crc32c::new();
            streamed.update(&data[..cut]);
            streamed.update(&data[cut..]);
            prop_assert_eq!(streamed.finalize(), table);
        }
    }
}
