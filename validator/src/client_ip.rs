//! The client's address: the socket peer, or, when the peer is a configured trusted proxy, the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Taking the right-most
//! untrusted hop means a client cannot spoof its address by sending its own header.

use std::net::IpAddr;

use hyper::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // An unparsable hop ends the trusted chain: keep the last good address.
                return client;
            };
            let ip = ip.to_canonical();
            client = ip;
            if !is_trusted(&ip) {
                return ip;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            "203.0.113.5".parse().unwrap(),
            &headers(&["1.2.3.4"]),
            &trusted,
        );
        assert_eq!(ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        let ip = client_ip("10.0.0.1".parse().unwrap(), &headers(&["1.2.3.4"]), &[]);
        assert_eq!(ip, "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_proxy_chain_yields_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&["6.6.6.6, 198.51.100.9", "10.1.1.1"]);
        let ip = client_ip("10.0.0.2".parse().unwrap(), &h, &trusted);
        assert_eq!(ip, "198.51.100.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_hop_stops_at_last_trusted_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            "10.0.0.2".parse().unwrap(),
            &headers(&["nonsense"]),
            &trusted,
        );
        assert_eq!(ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        let ip = client_ip(
            "::ffff:10.0.0.2".parse().unwrap(),
            &headers(&["::ffff:192.0.2.1"]),
            &trusted,
        );
        assert_eq!(ip, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
