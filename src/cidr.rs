//! Address ranges for the source allow-list (`allow`): `10.0.0.0/8`,
//! `2001:db8::/32`, or a bare address (a /32 or /128).
//!
//! An IPv4 peer of a dual-stack (`::`) listener shows up as an IPv4-mapped
//! IPv6 address (`::ffff:10.1.2.3`); it is matched as the IPv4 address it
//! is, so one IPv4 range covers it however hapgent listens. Pure.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One range: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of two `width`-bit numbers agree.
fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix);
    (a >> shift) == (b >> shift)
}

/// Whether any range of `list` contains `ip`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let bad = || {
            format!("{text:?} is not an address range (e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)")
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let parsed: IpAddr = addr.parse().map_err(|_| bad())?;
        let width = if parsed.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0-{width}"))?,
        };
        // An IPv4-mapped range (::ffff:10.0.0.0/104) means the IPv4 one.
        let addr = parsed.to_canonical();
        let prefix = match (parsed, addr) {
            (IpAddr::V6(_), IpAddr::V4(_)) if prefix >= 96 => prefix - 96,
            (IpAddr::V6(_), IpAddr::V4(_)) => {
                return Err(format!(
                    "{text:?}: an IPv4-mapped range needs a prefix of 96 or more"
                ));
            }
            _ => prefix,
        };
        let cidr = Cidr { addr, prefix };
        // Host bits set (10.1.2.3/8) is almost always a typo for another
        // range: refuse rather than guess.
        if masked(addr, prefix) != addr {
            return Err(format!(
                "{text:?} has bits set beyond its /{prefix} prefix (did you mean {}/{prefix}?)",
                masked(addr, prefix)
            ));
        }
        Ok(cidr)
    }
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        // (range, address, inside)
        for (range, addr, inside) in [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.3", true),
            ("10.0.0.0/8", "::ffff:192.0.2.1", false),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "fe80::1", true),
            ("::/0", "10.0.0.1", false),
            ("::1", "::1", true),
            ("::ffff:10.0.0.0/104", "10.1.2.3", true),
            ("::ffff:10.0.0.0/104", "11.1.2.3", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
        ] {
            let cidr: Cidr = range.parse().unwrap_or_else(|e| panic!("{range}: {e}"));
            assert_eq!(cidr.contains(ip(addr)), inside, "{range} {addr}");
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(" ::1 ".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "::ffff:10.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        for (text, message) in [
            ("", "is not an address range"),
            ("10.0.0/8", "is not an address range"),
            ("localhost", "is not an address range"),
            ("10.0.0.0/33", "prefix length must be 0-32"),
            ("10.0.0.0/", "prefix length must be 0-32"),
            ("10.0.0.0/-1", "prefix length must be 0-32"),
            ("::/129", "prefix length must be 0-128"),
            ("::ffff:10.0.0.0/64", "needs a prefix of 96 or more"),
            ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        ] {
            let e = text.parse::<Cidr>().unwrap_err();
            assert!(e.contains(message), "{text:?}: {e}");
        }
    }
}
