//! How much memory the loader's id graph ([`Identity`]) takes per id.
//!
//! Observes N anonymous visitors (UUID-like ids), a fifth of whom sign in (a user id linked to
//! their anonymous id), and prints the process's resident memory before and after, with the
//! allocator `spoor serve` uses:
//!
//!   cargo run --release -p spoor-warehouse --example identity_memory -- 1000000

use spoor_warehouse::identity::{IdType, Identity};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let visitors: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_kib();
    let mut identity = Identity::new(false);
    let mut effects = Vec::new();
    for i in 0..visitors {
        let anonymous = format!("a7c2e9f0-51b3-4d8e-9a61-{i:012}");
        effects.clear();
        identity.observe(None, Some((IdType::AnonymousId, &anonymous)), &mut effects);
        if i % 5 == 0 {
            let user = format!("user-{i}");
            effects.clear();
            identity.observe(
                Some(&user),
                Some((IdType::AnonymousId, &anonymous)),
                &mut effects,
            );
        }
    }
    let after = rss_kib();
    let ids = visitors + visitors.div_ceil(5);
    println!(
        "{visitors} visitors, {ids} ids: resident memory {} MiB -> {} MiB, {:.0} bytes per id",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) as f64 * 1024.0 / ids as f64
    );
    std::hint::black_box(&identity);
}
