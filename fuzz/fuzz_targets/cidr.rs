//! The source allow-list (`allow`): ranges from the configuration file,
//! environment and flags, matched against every prober's address.
#![no_main]

use hapgent::cidr::Cidr;
use hapgent_fuzz::peak_during;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    // The first 17 bytes choose a peer address; the rest is the range.
    if data.len() < 17 {
        return;
    }
    let peer = if data[0] & 1 == 0 {
        IpAddr::from(<[u8; 4]>::try_from(&data[1..5]).unwrap())
    } else {
        IpAddr::from(<[u8; 16]>::try_from(&data[1..17]).unwrap())
    };
    let Ok(text) = std::str::from_utf8(&data[17..]) else {
        return;
    };
    let (parsed, peak) = peak_during(|| text.parse::<Cidr>());
    let Ok(cidr) = parsed else { return };
    // Property "no allocation": a valid range is parsed without the heap.
    assert_eq!(peak, 0);
    // Property "display round trip": a range prints as text that parses
    // back to the same range.
    let shown = cidr.to_string();
    assert_eq!(shown.parse::<Cidr>(), Ok(cidr), "{shown}");
    let (net, prefix) = shown.split_once('/').unwrap();
    let net: IpAddr = net.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    // Property "its own network is inside": the range contains its
    // address, also as seen on a dual-stack socket (IPv4-mapped).
    assert!(cidr.contains(net));
    if let IpAddr::V4(v4) = net {
        assert!(cidr.contains(IpAddr::V6(v4.to_ipv6_mapped())));
    }
    // Property "matching is prefix comparison": `contains` agrees with a
    // bit-by-bit comparison of the first `prefix` bits, IPv4-mapped peers
    // compared as IPv4.
    let want = match (net, peer.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(p)) => same_bits(&n.octets(), &p.octets(), prefix),
        (IpAddr::V6(n), IpAddr::V6(p)) => same_bits(&n.octets(), &p.octets(), prefix),
        _ => false,
    };
    assert_eq!(cidr.contains(peer), want, "{shown} {peer}");
});

fn same_bits(a: &[u8], b: &[u8], bits: u32) -> bool {
    (0..bits as usize).all(|i| (a[i / 8] >> (7 - i % 8)) & 1 == (b[i / 8] >> (7 - i % 8)) & 1)
}
