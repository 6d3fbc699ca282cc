//! IP networks as `relay_from_hosts` lists them: an address (`192.0.2.7`,
//! `2001:db8::1`) or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`). Parsed
//! once when the configuration is loaded, so that a typo such as
//! `10.0.0/8` is an error at startup instead of a block that silently
//! matches nothing on every RCPT.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address and how many leading bits of it a peer must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

const V4_BITS: u8 = 32;
const V6_BITS: u8 = 128;

impl Network {
    /// Whether `ip` is inside. An IPv4 network also holds the IPv4-mapped
    /// IPv6 form of its addresses (`::ffff:10.1.1.1`), which is how a
    /// dual-stack listener sees IPv4 clients.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn mask_u32(prefix: u8) -> u32 {
    // A shift by the full width overflows, so /0 is its own case.
    u32::MAX
        .checked_shl(u32::from(V4_BITS - prefix))
        .unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(u32::from(V6_BITS - prefix))
        .unwrap_or(0)
}

impl FromStr for Network {
    type Err = String;

    /// Host bits after the prefix are allowed and ignored (`10.1.2.3/8` is
    /// `10.0.0.0/8`), as Exim's host lists take them.
    fn from_str(text: &str) -> Result<Network, String> {
        let bad = || {
            format!(
                "{text:?}: expected an IP address or a CIDR block such as \"192.0.2.0/24\" or \"2001:db8::/32\""
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { V4_BITS } else { V6_BITS };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
                }
            }
            Some(_) => return Err(bad()),
        };
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_blocks() {
        let cases = [
            ("127.0.0.1", Some("127.0.0.1/32")),
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("10.1.2.3/8", Some("10.1.2.3/8")),
            (" 192.0.2.0/24 ", Some("192.0.2.0/24")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("2001:db8::/32", Some("2001:db8::/32")),
            ("::1", Some("::1/128")),
            ("10.0.0/8", None),
            ("10.0.0.0/33", None),
            ("2001:db8::/129", None),
            ("10.0.0.0/", None),
            ("10.0.0.0/x", None),
            ("10.0.0.0/+8", None),
            ("localhost", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<Network>().map(|n| n.to_string()).ok();
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
        let e = "10.0.0/8".parse::<Network>().unwrap_err();
        assert!(e.contains("\"10.0.0/8\""), "{e}");
    }

    #[test]
    fn holds_what_its_prefix_covers() {
        let net = |s: &str| s.parse::<Network>().unwrap();
        let cases = [
            ("10.0.0.0/8", "10.255.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "10.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.1.1.1", true),
            ("10.0.0.0/8", "::ffff:11.1.1.1", false),
        ];
        for (n, ip, want) in cases {
            assert_eq!(net(n).contains(ip.parse().unwrap()), want, "{n} {ip}");
        }
    }
}
