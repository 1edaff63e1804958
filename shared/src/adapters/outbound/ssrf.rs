//! The SSRF guard: which addresses an outbound call may connect to.
//!
//! Names are resolved first and every resolved address is checked; if any one is forbidden the
//! call is refused (a name that mixes public and private answers is a rebinding attempt). The
//! connection then goes to exactly the checked addresses: reqwest connects to what our resolver
//! returned, so there is no second lookup to race. IP literals (in any notation the URL parser
//! accepts, decimal and octal included) are checked before the request is sent, and every
//! redirect target is checked again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range (CIDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parse `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| format!("invalid address range {text:?}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("invalid prefix in {text:?}"))?
            }
            None => max,
        };
        Ok(IpRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which destinations are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Ranges allowed even though they are private (local development and tests only).
    pub allow: Vec<IpRange>,
}

impl AddressPolicy {
    /// Parse a comma-separated allow-list (`SWITCHYARD_OUTBOUND_ALLOW`).
    pub fn from_allow_list(text: &str) -> Result<AddressPolicy, String> {
        let allow = text.split(',').filter(|s| !s.trim().is_empty()).map(IpRange::parse).collect::<Result<_, _>>()?;
        Ok(AddressPolicy { allow })
    }

    /// `None` if the address may be connected to, else why not.
    pub fn check(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow.iter().any(|r| r.contains(ip)) {
            return None;
        }
        forbidden(ip)
    }
}

/// Why an address is never a legitimate third-party API, if it is not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified/this-network address"),
        ([10, 0, 0, 0], 8, "private address"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT address"),
        ([127, 0, 0, 0], 8, "loopback address"),
        ([169, 254, 0, 0], 16, "link-local address (cloud metadata)"),
        ([172, 16, 0, 0], 12, "private address"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation address"),
        ([192, 88, 99, 0], 24, "6to4 relay address"),
        ([192, 168, 0, 0], 16, "private address"),
        ([198, 18, 0, 0], 15, "benchmarking address"),
        ([198, 51, 100, 0], 24, "documentation address"),
        ([203, 0, 113, 0], 24, "documentation address"),
        ([224, 0, 0, 0], 4, "multicast address"),
        ([240, 0, 0, 0], 4, "reserved address"),
    ];
    RANGES.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let in_v6 = |net: u128, prefix: u32| {
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        bits & mask == net & mask
    };
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    // Addresses that embed an IPv4 address are judged by it: mapped, compatible, NAT64, 6to4.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(0, 96) {
        return Some(forbidden_v4(low32).unwrap_or("IPv4-compatible address"));
    }
    if in_v6(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) || in_v6(0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48) {
        return Some(forbidden_v4(low32).unwrap_or("NAT64 address"));
    }
    if in_v6(0x2002_0000_0000_0000_0000_0000_0000_0000, 16) {
        return Some("6to4 address");
    }
    const RANGES: &[(u128, u32, &str)] = &[
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, "discard-only address"),
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 32, "Teredo address"),
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, "documentation address"),
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, "unique local address"),
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, "link-local address"),
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, "site-local address"),
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, "multicast address"),
    ];
    RANGES.iter().find(|(net, prefix, _)| in_v6(*net, *prefix)).map(|(_, _, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{ip} must be refused");
        }
    }

    #[test]
    fn allows_public_addresses_and_the_allow_list() {
        for ip in ["93.184.215.14", "140.82.112.3", "2606:4700::6810:85e5", "::ffff:8.8.8.8"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{ip} must be allowed");
        }
        let policy = AddressPolicy::from_allow_list("127.0.0.1/32, ::1").unwrap();
        assert_eq!(policy.check("127.0.0.1".parse().unwrap()), None);
        assert!(policy.check("127.0.0.2".parse().unwrap()).is_some());
        assert_eq!(policy.check("::1".parse().unwrap()), None);
        assert!(AddressPolicy::from_allow_list("nonsense").is_err());
        assert!(IpRange::parse("10.0.0.0/33").is_err());
    }
}
