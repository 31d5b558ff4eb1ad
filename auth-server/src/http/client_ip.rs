//! The client's address: the TCP peer, unless the peer is a trusted
//! reverse proxy (`AUTH_TRUSTED_PROXIES`); then the rightmost
//! `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left
//! of that are whatever the client wrote and are never believed, so a
//! forged `X-Forwarded-For` changes nothing (each proxy appends the address
//! it received the request from).

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

#[cfg(test)]
use crate::config::parse_trusted;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` element: an address, maybe bracketed or with a
/// port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

/// The client address for a peer and the request's `X-Forwarded-For`
/// values, in header order.
pub fn resolve<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop).map(canonical) {
            // Garbage where a proxy's entry should be: stop at the last
            // address a trusted proxy vouched for.
            None => return client,
            Some(ip) if trusted(ip, proxies) => client = ip,
            Some(ip) => return ip,
        }
    }
    client
}

/// The client address of `req`.
pub fn client_ip(req: &HttpRequest, proxies: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
    let values = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    resolve(peer, values, proxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = parse_trusted("10.0.0.1").unwrap();
        assert_eq!(
            resolve(ip("203.0.113.9"), ["198.51.100.1"].into_iter(), &proxies),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let proxies = parse_trusted("10.0.0.0/8, 192.0.2.7").unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let xff = ["6.6.6.6, 203.0.113.9", "192.0.2.7"];
        assert_eq!(
            resolve(ip("10.1.2.3"), xff.into_iter(), &proxies),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn entries_may_carry_ports_and_brackets_and_mapped_addresses() {
        let proxies = parse_trusted("127.0.0.1").unwrap();
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), ["203.0.113.9:4711"].into_iter(), &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), ["[2001:db8::1]:443"].into_iter(), &proxies),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn garbage_or_a_missing_header_leaves_the_last_trusted_hop() {
        let proxies = parse_trusted("127.0.0.1").unwrap();
        assert_eq!(
            resolve(ip("127.0.0.1"), std::iter::empty(), &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), ["1.2.3.4, not-an-ip"].into_iter(), &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.example").is_err());
        assert!(parse_trusted("0.0.0.0/0").is_err());
        assert!(parse_trusted("::/0").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
