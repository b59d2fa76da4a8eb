//! Pure rules a playbook's values follow, shared by the loader and the
//! adapters' own rules: addresses and hosts, store paths, duration bounds.

use std::time::Duration;

/// Longest `max_age`, `inactive_after` and token `ttl`: ten years.
pub const MAX_LONG_DURATION: Duration = Duration::from_secs(3650 * 86_400);
/// Longest `grace_period`: a run waits this long before retiring.
pub const MAX_GRACE_PERIOD: Duration = Duration::from_secs(86_400);
/// Longest `verify.interval` and `limits.timeout`.
pub const MAX_SHORT_DURATION: Duration = Duration::from_secs(3_600);

fn format_max(max: Duration) -> String {
    if max == MAX_LONG_DURATION {
        "3650d (ten years)".into()
    } else {
        humantime::format_duration(max).to_string()
    }
}

fn duration_example(field: &str) -> &'static str {
    match field {
        "grace_period" => "30s",
        "interval" => "2s",
        "timeout" => "30s",
        "ttl" => "720h",
        _ => "90d",
    }
}

/// What is wrong with a duration, if anything: zero (unless `zero_ok`), or
/// longer than `max`. `field` names it in the message.
pub fn duration_problem(field: &str, d: Option<Duration>, zero_ok: bool, max: Duration) -> Option<(String, String)> {
    let d = d?;
    if d.is_zero() && !zero_ok {
        Some((format!("`{field}` must be longer than 0s"), format!("write e.g. `{}`", duration_example(field))))
    } else if d > max {
        Some((
            format!("`{field}` is {}; it must be at most {}", humantime::format_duration(d), format_max(max)),
            format!("a longer `{field}` is a typo or a unit mistake; write e.g. `{}`", duration_example(field)),
        ))
    } else {
        None
    }
}

/// What is wrong with a provider address, if anything. `scheme_ok` lists the
/// schemes accepted. Never echoes a password written in the address.
pub fn address_problem(address: &str, schemes: &[&str], allow_link_local: bool) -> Option<(String, String)> {
    let url = match reqwest::Url::parse(address.trim()) {
        Ok(u) => u,
        Err(e) => {
            let shown = if address.contains('@') { "(not shown: it contains `@`)".to_string() } else { format!("`{address}`") };
            return Some((format!("address {shown} is not a URL: {e}"), format!("write e.g. `{}://vault.internal:8200`", schemes[0])));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some((
            "the address carries a user name or password (`user:…@host`); credentials never go in an address".into(),
            "remove the `user:…@` part; keysweep logs in with the provider's `auth:`/`admin:` login reference (`${env:NAME}`)".into(),
        ));
    }
    if !schemes.contains(&url.scheme()) {
        return Some((
            format!("address scheme `{}` is not supported here", url.scheme()),
            format!("use {}", schemes.iter().map(|s| format!("`{s}://`")).collect::<Vec<_>>().join(" or ")),
        ));
    }
    let Some(host) = url.host() else {
        return Some(("the address has no host".into(), format!("write e.g. `{}://vault.internal:8200`", schemes[0])));
    };
    if !allow_link_local {
        if let Some(why) = host_problem(&host.to_string()) {
            return Some(why);
        }
    }
    None
}

/// Link-local and cloud metadata hosts: keysweep would send its admin login
/// there. Refused unless the provider sets `allow_link_local: true`.
pub fn host_problem(host: &str) -> Option<(String, String)> {
    use std::net::IpAddr;
    let h = host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let metadata_names = ["metadata.google.internal", "metadata", "metadata.azure.internal", "instance-data", "instance-data.ec2.internal"];
    let hint =
        "a provider never lives at a link-local or cloud metadata address; if this one really does, set `allow_link_local: true` on the provider"
            .to_string();
    if metadata_names.contains(&h.as_str()) {
        return Some((format!("`{h}` is a cloud metadata service address"), hint));
    }
    let ip: IpAddr = h.parse().ok()?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let metadata_ip = match ip {
        IpAddr::V4(v4) => v4.octets() == [169, 254, 169, 254] || v4.octets() == [100, 100, 100, 200],
        IpAddr::V6(v6) => v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
    };
    if metadata_ip {
        return Some((format!("`{ip}` is a cloud metadata service address"), hint));
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    link_local.then(|| (format!("`{ip}` is a link-local address"), hint))
}

/// What is wrong with a store path, mount or prefix (`..`, `.`, empty segments,
/// a leading `/`), if anything.
pub fn store_path_problem(field: &str, value: &str) -> Option<String> {
    if value.starts_with('/') {
        return Some(format!("`{field}` starts with `/`"));
    }
    if value.split('/').any(|s| s == "..") {
        return Some(format!("`{field}` contains a `..` segment"));
    }
    if value.split('/').any(|s| s == ".") {
        return Some(format!("`{field}` contains a `.` segment"));
    }
    if !value.is_empty() && value.split('/').any(str::is_empty) {
        return Some(format!("`{field}` has an empty segment (`//` or a trailing `/`)"));
    }
    None
}

/// `*` matches any run of characters; otherwise the whole string must match.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == s;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether `host` (a name or an IP address, brackets allowed) is this machine:
/// `localhost` (or a name under `.localhost`), 127.0.0.0/8, `::1`, or an
/// IPv4-mapped loopback address. Names are not resolved: a name that happens
/// to resolve to 127.0.0.1 is not loopback here.
pub fn is_loopback_host(host: &str) -> bool {
    use std::net::IpAddr;
    let h = host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

/// The hint of every "plaintext to a remote host" refusal.
pub const PLAINTEXT_HINT: &str = "use TLS (see the provider's TLS settings); if this network path really is trusted, set `allow_plaintext: true` on the provider, which `plan` then reports";

/// A plaintext (`http://`) address to a host that is not loopback, unless
/// `allow_plaintext`. Other schemes and unparsable addresses are
/// `address_problem`'s to judge.
pub fn plaintext_address_problem(address: &str, allow_plaintext: bool) -> Option<(String, String)> {
    if allow_plaintext {
        return None;
    }
    let url = reqwest::Url::parse(address.trim()).ok()?;
    // (A URL prefix, not the `http` provider kind: the core names no kind.)
    if !url.as_str().starts_with("http://") {
        return None;
    }
    let host = url.host_str()?;
    if is_loopback_host(host) {
        return None;
    }
    Some((
        format!("`http://` to `{host}`, which is not loopback: keysweep's login and every secret it handles would cross the network unencrypted"),
        format!("write `https://{}`; {PLAINTEXT_HINT}", &address.trim()["http://".len()..]),
    ))
}

#[cfg(test)]
mod plaintext_tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST.", "db.localhost", "127.0.0.1", "127.9.8.7", "::1", "[::1]", "::ffff:127.0.0.1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "vault.internal", "localhost.example.com", "::2", "0.0.0.0", "128.0.0.1"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn plaintext_to_a_remote_host_is_refused_unless_allowed() {
        assert!(plaintext_address_problem("http://127.0.0.1:8200", false).is_none());
        assert!(plaintext_address_problem("http://localhost:8200", false).is_none());
        assert!(plaintext_address_problem("http://[::1]:8200", false).is_none());
        assert!(plaintext_address_problem("https://vault.internal:8200", false).is_none());
        let (m, h) = plaintext_address_problem("http://vault.internal:8200", false).unwrap();
        assert!(m.contains("vault.internal") && m.contains("not loopback"), "{m}");
        assert!(h.contains("https://vault.internal:8200") && h.contains("allow_plaintext: true"), "{h}");
        assert!(plaintext_address_problem("http://vault.internal:8200", true).is_none());
    }
}
