use std::time::Instant;
fn main() {
    let data: Vec<u8> = (0..(4usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    for &len in &[48usize, 300, 1100, 4096, 32768, 4 << 20] {
        let reps = (400usize << 20) / len;
        let a = crc32c::crc32c(&data[..len]);
        let b = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &data[..len]) as u32;
        assert_eq!(a, b, "len {len}");
        for round in 0..2 {
            let t = Instant::now();
            let mut x = 0u32;
            for i in 0..reps { let off = (i * 64) % (data.len() - len + 1); x ^= crc32c::crc32c(&data[off..off + len]); }
            let ta = t.elapsed();
            let t = Instant::now();
            let mut y = 0u32;
            for i in 0..reps { let off = (i * 64) % (data.len() - len + 1); y ^= crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &data[off..off + len]) as u32; }
            let tb = t.elapsed();
            let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
            let t = Instant::now();
            for i in 0..reps { let off = (i * 64) % (data.len() - len + 1); d.reset(); d.update(&data[off..off + len]); y ^= d.finalize() as u32; }
            let tc = t.elapsed();
            if round == 1 {
            let gbs = |t: std::time::Duration| (reps * len) as f64 / t.as_secs_f64() / 1e9;
            println!("len {len:>8}: crc32c {:6.2} GB/s  crc-fast checksum {:6.2} GB/s  digest {:6.2} GB/s ({x}{y})", gbs(ta), gbs(tb), gbs(tc));
            }
        }
    }
}
