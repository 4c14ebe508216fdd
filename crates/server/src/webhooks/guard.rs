//! The address guard: which resolved addresses a delivery may connect to.
//!
//! A webhook URL is chosen by a client, and the server connects from inside the network it
//! runs in: without a guard, an endpoint aimed at `169.254.169.254` reads a cloud's instance
//! credentials, and one aimed at `10.0.0.5:6379` talks to an internal service (server-side
//! request forgery). The dispatcher resolves the host once per attempt, checks the address it
//! will use here, and connects to exactly that address, so a name that resolves differently
//! on a second lookup (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `address` is refused as a destination, or `None` when it is a public address.
pub fn refused(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refused_v4(v4),
            None => refused_v6(v6),
        },
    }
}

fn refused_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    Some(match (a, b, c) {
        _ if address.is_unspecified() || a == 0 => "an unspecified address",
        _ if address.is_loopback() => "a loopback address",
        // The metadata service of AWS, GCP, Azure and others sits in the link-local range.
        _ if address.is_link_local() => "a link-local address (cloud metadata among them)",
        _ if address.is_private() => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (198, 18..=19, _) => "a benchmarking address",
        _ if address.is_multicast() || a >= 240 => "a multicast or reserved address",
        _ => return None,
    })
}

fn refused_v6(address: Ipv6Addr) -> Option<&'static str> {
    let first = address.segments()[0];
    Some(match first {
        _ if address.is_unspecified() => "an unspecified address",
        _ if address.is_loopback() => "a loopback address",
        _ if first & 0xffc0 == 0xfe80 => "a link-local address",
        // fc00::/7, unique local (AWS's metadata service is fd00:ec2::254).
        _ if first & 0xfe00 == 0xfc00 => "a unique local (private) address",
        _ if first & 0xff00 == 0xff00 => "a multicast address",
        // 64:ff9b::/96 translates to IPv4: judge the address it carries.
        0x64 if address.segments()[1..6] == [0xff9b, 0, 0, 0, 0] => {
            let [.., high, low] = address.segments();
            let v4 = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            return refused_v4(v4);
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_are_refused() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let address: IpAddr = text.parse().unwrap();
            assert!(refused(address).is_some(), "{text} passed");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            let address: IpAddr = text.parse().unwrap();
            assert_eq!(refused(address), None, "{text}");
        }
    }
}
