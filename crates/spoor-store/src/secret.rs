//! Secrets and identifiers: random write keys, tokens and ids, SHA-256 hashes, constant-time
//! comparison and UUID v4 strings.
//!
//! Every secret is drawn from the operating system's random source and carries at least 128
//! bits of randomness: write keys are 32 base62 characters (about 190 bits), tokens are
//! `spoor_` and 43 base64url characters (256 bits).

use sha2::{Digest, Sha256};

use crate::error::StoreError;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(buf).map_err(|err| StoreError::Random(err.to_string()))
}

/// A random base62 string of `len` characters (rejection sampling, so uniform).
pub fn random_base62(len: usize) -> Result<String, StoreError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf)?;
        for byte in buf {
            // 248 = 62 * 4: values at or above it would bias the result.
            if byte < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    Ok(out)
}

/// A new write key: 32 base62 characters, like Segment's.
pub fn new_write_key() -> Result<String, StoreError> {
    random_base62(32)
}

/// A new Public API token: `spoor_` and 43 base64url characters (256 bits).
pub fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("spoor_");
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    Ok(out)
}

/// A new id for a workspace, source or token: 22 base62 characters, like Segment's ids.
pub fn new_id() -> Result<String, StoreError> {
    random_base62(22)
}

/// SHA-256 of `text`, as 32 bytes.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// SHA-256 of `text`, as 64 lower-case hex digits.
pub fn sha256_hex(text: &str) -> String {
    to_hex(&sha256(text))
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// A UUID version 4 string (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`) from 16 random bytes.
pub fn uuid_v4_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = to_hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A new random UUID v4 string.
pub fn new_uuid() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(uuid_v4_from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_promised_shape() {
        let key = new_write_key().unwrap();
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        let token = new_token().unwrap();
        assert_eq!(token.len(), "spoor_".len() + 43);
        assert_ne!(new_token().unwrap(), token);
        assert_eq!(new_id().unwrap().len(), 22);
    }

    #[test]
    fn uuid_has_version_and_variant_bits() {
        let id = uuid_v4_from([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(new_uuid().unwrap().len(), 36);
    }

    #[test]
    fn hashes_and_comparison() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
