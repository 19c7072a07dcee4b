//! Address ranges in CIDR notation (`10.0.0.0/8`, `fc00::/7`), and lists
//! of them: which clients the LS's DNS front end answers (`--allow`).
//! Pure, no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The ranges the LS's DNS front end answers when none are given, as
/// dnsdist's default ACL: loopback, the private ranges (RFC 1918, RFC
/// 4193) and link-local addresses.
pub const PRIVATE_RANGES: &str =
    "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,::1/128,fc00::/7,fe80::/10";

/// One range: a network address and how many leading bits count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `addr` is in the range (an IPv4-mapped IPv6 address as the
    /// IPv4 address it maps).
    ///
    /// ```
    /// use dnslb::cidr::Cidr;
    /// let private: Cidr = "172.16.0.0/12".parse().unwrap();
    /// assert!(private.contains("172.31.255.1".parse().unwrap()));
    /// assert!(!private.contains("172.32.0.1".parse().unwrap()));
    /// assert!(private.contains("::ffff:172.16.0.9".parse().unwrap()));
    /// let ula: Cidr = "fc00::/7".parse().unwrap();
    /// assert!(ula.contains("fd12::1".parse().unwrap()) && !ula.contains("fe00::1".parse().unwrap()));
    /// assert!(!ula.contains("10.0.0.1".parse().unwrap()));
    /// ```
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(a)), self.bits, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(a), self.bits, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `value` (`width` bits wide) with all but its first `bits` bits cleared.
fn masked(value: u128, bits: u8, width: u8) -> u128 {
    if bits == 0 {
        return 0;
    }
    let keep = u32::from(width - bits);
    (value >> keep) << keep
}

impl FromStr for Cidr {
    type Err = String;

    /// `address/bits`, or an address alone (the one address). Bits after
    /// the prefix are cleared: `192.168.1.7/24` is `192.168.1.0/24`.
    ///
    /// ```
    /// use dnslb::cidr::Cidr;
    /// assert_eq!("192.168.1.7/24".parse::<Cidr>().unwrap().to_string(), "192.168.1.0/24");
    /// assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
    /// assert!("10.0.0.0/33".parse::<Cidr>().unwrap_err().contains("10.0.0.0/33"));
    /// assert!("example.com/8".parse::<Cidr>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?}: {address:?} is not an IP address"))?;
        let width: u8 = if address.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => width,
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        let network = match address {
            IpAddr::V4(a) => {
                let value = masked(u128::from(u32::from(a)), bits, 32);
                IpAddr::V4(Ipv4Addr::from(u32::try_from(value).expect("32 bits")))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(masked(u128::from(a), bits, 128))),
        };
        Ok(Cidr { network, bits })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.bits)
    }
}

/// A comma-separated list of ranges, as `--allow` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl CidrList {
    /// [`PRIVATE_RANGES`].
    pub fn private() -> CidrList {
        PRIVATE_RANGES.parse().expect("valid ranges")
    }

    /// Whether any range of the list holds `addr`.
    ///
    /// ```
    /// use dnslb::cidr::CidrList;
    /// let private = CidrList::private();
    /// for inside in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.1.1", "::1", "fd00::1", "fe80::1"] {
    ///     assert!(private.contains(inside.parse().unwrap()), "{inside}");
    /// }
    /// for outside in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::2"] {
    ///     assert!(!private.contains(outside.parse().unwrap()), "{outside}");
    /// }
    /// ```
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(addr))
    }
}

impl FromStr for CidrList {
    type Err = String;

    /// Ranges separated by commas (spaces around them allowed).
    ///
    /// ```
    /// use dnslb::cidr::CidrList;
    /// let list: CidrList = "10.0.0.0/8, 192.0.2.1".parse().unwrap();
    /// assert_eq!(list.to_string(), "10.0.0.0/8,192.0.2.1/32");
    /// assert!("".parse::<CidrList>().is_err());
    /// assert!("10.0.0.0/8,,::1".parse::<CidrList>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<CidrList, String> {
        text.split(',')
            .map(|range| match range.trim() {
                "" => Err(format!("{text:?}: an empty range")),
                range => range.parse(),
            })
            .collect::<Result<Vec<Cidr>, String>>()
            .map(CidrList)
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&ranges.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefix_lengths_from_0_to_the_full_width_match_as_they_should() {
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")) && !all.contains(ip("::1")));
        let one: Cidr = "192.0.2.1/32".parse().unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")) && !all6.contains(ip("10.0.0.1")));
        let half: Cidr = "128.0.0.0/1".parse().unwrap();
        assert!(half.contains(ip("200.1.1.1")) && !half.contains(ip("127.0.0.1")));
        let link: Cidr = "fe80::/10".parse().unwrap();
        assert!(link.contains(ip("febf::1")) && !link.contains(ip("fec0::1")));
    }

    #[test]
    fn bad_ranges_are_named_in_the_error() {
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/-1",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/8/8",
        ] {
            let error = bad.parse::<Cidr>().unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
        let error = "10.0.0.0/8,nonsense".parse::<CidrList>().unwrap_err();
        assert!(error.contains("nonsense"), "{error}");
    }
}
