//! Random UUID v4 message ids, from the operating system's random source.

use std::cell::RefCell;

use crate::ClientError;

/// Random bytes drawn from the OS 4 KB at a time, so a million ids cost 4,000 system calls,
/// not a million. Each thread has its own pool; a byte is never used twice.
struct Pool {
    bytes: [u8; 4096],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; 4096], used: 4096 }) };
}

fn random_16() -> Result<[u8; 16], ClientError> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + 16 > pool.bytes.len() {
            getrandom::fill(&mut pool.bytes).map_err(ClientError::Random)?;
            pool.used = 0;
        }
        let mut out = [0u8; 16];
        let start = pool.used;
        out.copy_from_slice(&pool.bytes[start..start + 16]);
        pool.bytes[start..start + 16].fill(0);
        pool.used += 16;
        Ok(out)
    })
}

/// A new random UUID v4 in its canonical lower-case text form.
pub fn uuid_v4() -> Result<String, ClientError> {
    let mut bytes = random_16()?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Ok(text)
}

/// A random number in `[0, 1)` for backoff jitter; 0.5 when the OS gives no randomness.
pub fn unit_random() -> f64 {
    match getrandom::u64() {
        Ok(n) => (n >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let id = uuid_v4().expect("random");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            assert!(
                seen.insert(uuid_v4().expect("random")),
                "ids never repeat across pool refills"
            );
        }
    }

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..100 {
            let x = unit_random();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
