//! Where a key may be used from and on: IP addresses and CIDRs, referrer
//! origins (`*.example.com` for subdomains), and endpoints.

use std::net::IpAddr;

use serde::Serialize;

/// An allowed endpoint: a method (or `*`) and a path pattern whose `*`
/// matches one segment, or anything when it ends the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EndpointRule {
    pub method: String,
    pub path: String,
}

impl EndpointRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (method, path) =
            text.trim().split_once(' ').ok_or_else(|| format!("endpoint {text:?}: expected \"METHOD /path\""))?;
        let method = method.to_ascii_uppercase();
        let ok_method = method == "*" || ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str());
        let path = path.trim();
        if !ok_method || !path.starts_with('/') || path.len() > 200 || path.chars().any(char::is_whitespace) {
            return Err(format!("endpoint {text:?}: expected \"METHOD /path\", e.g. \"GET /v1/users/*\""));
        }
        Ok(Self { method, path: path.to_string() })
    }

    pub fn allows(&self, method: &str, path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let pattern: Vec<&str> = self.path.trim_end_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        for (i, part) in pattern.iter().enumerate() {
            if *part == "*" && i == pattern.len() - 1 {
                return actual.len() > i;
            }
            match actual.get(i) {
                Some(a) if *part == "*" || part == a => {}
                _ => return false,
            }
        }
        actual.len() == pattern.len()
    }
}

/// Where a key may be used from and on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Restrictions {
    pub ips: Vec<String>,
    pub referrers: Vec<String>,
    pub endpoints: Vec<EndpointRule>,
}

pub(super) fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

/// A rule that does not parse: which list (`allowed_ips`,
/// `allowed_referrers`, `allowed_endpoints`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRule {
    pub field: &'static str,
    pub message: String,
}

impl Restrictions {
    /// Parses the rules of a request: IPs or CIDRs (stored normalised),
    /// referrer origins or `*.domain`, and `METHOD /path` endpoints. The
    /// error names the field and its first bad entry.
    pub fn parse(ips: &[String], referrers: &[String], endpoints: &[String]) -> Result<Self, BadRule> {
        let bad = |field| move |message| BadRule { field, message };
        let ips = ips
            .iter()
            .map(|ip| parse_net(ip).map(|n| n.to_string()))
            .collect::<Result<_, _>>()
            .map_err(bad("allowed_ips"))?;
        for r in referrers {
            if r.len() > 253 || r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("allowed_referrers")(format!("referrer {r:?} is not an origin or *.domain")));
            }
        }
        let endpoints = endpoints
            .iter()
            .map(|e| EndpointRule::parse(e))
            .collect::<Result<_, _>>()
            .map_err(bad("allowed_endpoints"))?;
        Ok(Self { ips, referrers: referrers.to_vec(), endpoints })
    }

    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.ips.is_empty()
            || ip.is_some_and(|ip| self.ips.iter().filter_map(|n| parse_net(n).ok()).any(|n| n.contains(&ip)))
    }

    /// `referrer` is an origin or URL; a rule is an origin, or
    /// `*.example.com` for any subdomain.
    pub fn allows_referrer(&self, referrer: Option<&str>) -> bool {
        if self.referrers.is_empty() {
            return true;
        }
        let Some(referrer) = referrer else { return false };
        let host = referrer.split("://").nth(1).unwrap_or(referrer).split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h).to_ascii_lowercase();
        self.referrers.iter().any(|rule| {
            let rule = rule.to_ascii_lowercase();
            let rule_host = rule.split("://").nth(1).unwrap_or(&rule).trim_end_matches('/');
            match rule_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => rule_host.rsplit_once(':').map_or(rule_host, |(h, _)| h) == host,
            }
        })
    }

    /// A key made by a restricted caller: each kind of rule the request
    /// left empty is the caller's.
    pub fn inherit(mut self, caller: &Restrictions) -> Self {
        if self.ips.is_empty() {
            self.ips = caller.ips.clone();
        }
        if self.referrers.is_empty() {
            self.referrers = caller.referrers.clone();
        }
        if self.endpoints.is_empty() {
            self.endpoints = caller.endpoints.clone();
        }
        self
    }

    /// Whether these rules are at least as strict as `caller`'s: for every
    /// kind of rule the caller has, these have some, all among the caller's.
    /// (Exact entries: a narrower CIDR than the caller's is refused rather
    /// than reasoned about.)
    pub fn within(&self, caller: &Restrictions) -> bool {
        fn subset<T: PartialEq>(mine: &[T], theirs: &[T]) -> bool {
            theirs.is_empty() || (!mine.is_empty() && mine.iter().all(|m| theirs.contains(m)))
        }
        subset(&self.ips, &caller.ips)
            && subset(&self.referrers, &caller.referrers)
            && subset(&self.endpoints, &caller.endpoints)
    }

    pub fn allows_endpoint(&self, method: &str, path: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.allows(method, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrictions_match_ips_referrers_and_endpoints() {
        let r = Restrictions {
            ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into(), "192.0.2.7/32".into()],
            referrers: vec!["https://app.example.com".into(), "*.example.org".into()],
            endpoints: vec![
                EndpointRule::parse("GET /v1/users/*").unwrap(),
                EndpointRule::parse("* /v1/ping").unwrap(),
            ],
        };
        assert!(r.allows_ip(Some("10.1.2.3".parse().unwrap())));
        assert!(r.allows_ip(Some("2001:db8::1".parse().unwrap())));
        assert!(r.allows_ip(Some("192.0.2.7".parse().unwrap())));
        assert!(!r.allows_ip(Some("192.0.2.8".parse().unwrap())));
        assert!(!r.allows_ip(None));
        assert!(r.allows_referrer(Some("https://app.example.com/page")));
        assert!(r.allows_referrer(Some("https://a.b.example.org")));
        assert!(!r.allows_referrer(Some("https://example.org")));
        assert!(!r.allows_referrer(Some("https://app.example.com.evil.net")));
        assert!(!r.allows_referrer(None));
        assert!(r.allows_endpoint("GET", "/v1/users/usr_1"));
        assert!(!r.allows_endpoint("DELETE", "/v1/users/usr_1"));
        assert!(!r.allows_endpoint("GET", "/v1/users"));
        assert!(!r.allows_endpoint("GET", "/v1/clients/x"));
        assert!(r.allows_endpoint("POST", "/v1/ping"));
        assert!(Restrictions::default().allows_ip(None));
        assert!(EndpointRule::parse("FETCH /x").is_err());
        assert!(EndpointRule::parse("GET x").is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn rule_parsers_never_panic(ip in "\\PC{0,50}", referrer in "\\PC{0,50}", endpoint in "\\PC{0,50}", path in "\\PC{0,50}") {
                let parsed = Restrictions::parse(&[ip], std::slice::from_ref(&referrer), &[endpoint]);
                if let Ok(r) = parsed {
                    let _ = r.allows_referrer(Some(&referrer));
                    let _ = r.allows_endpoint("GET", &path);
                    let _ = r.allows_ip(Some("10.0.0.1".parse().unwrap()));
                }
            }

            #[test]
            fn a_cidr_rule_admits_exactly_its_network(a: u8, b: u8, c: u8, d: u8, prefix in 0u8..=32, e: u8) {
                let rule = format!("{a}.{b}.{c}.{d}/{prefix}");
                let r = Restrictions::parse(std::slice::from_ref(&rule), &[], &[]).unwrap();
                let net: ipnet::Ipv4Net = rule.parse().unwrap();
                let ip = std::net::Ipv4Addr::new(a, b, c, e);
                prop_assert_eq!(r.allows_ip(Some(ip.into())), net.contains(&ip));
            }

            #[test]
            fn a_subdomain_rule_never_admits_a_lookalike(label in "[a-z]{1,10}", domain in "[a-z]{1,10}\\.[a-z]{2,4}") {
                let r = Restrictions::parse(&[], &[format!("*.{domain}")], &[]).unwrap();
                let sub = format!("https://{label}.{domain}/page");
                let suffix = format!("https://{label}.{domain}.evil.net/");
                let glued = format!("https://{label}{domain}/");
                prop_assert!(r.allows_referrer(Some(&sub)));
                prop_assert!(!r.allows_referrer(Some(&suffix)));
                prop_assert!(!r.allows_referrer(Some(&glued)));
            }

            #[test]
            fn endpoint_rules_round_trip(method in "(GET|POST|PUT|PATCH|DELETE|HEAD|\\*)", path in "(/[a-z*]{1,6}){1,4}") {
                let rule = EndpointRule::parse(&format!("{method} {path}")).unwrap();
                prop_assert_eq!(EndpointRule::parse(&format!("{} {}", rule.method, rule.path)).unwrap(), rule);
            }
        }
    }
}
