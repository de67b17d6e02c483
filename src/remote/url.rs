//! Where the remote tier is: one Redis server or the seed nodes of a Redis
//! Cluster, parsed from the user's URL, and printed without its password.

use crate::error::{Error, Result};

/// One server, or a cluster's seed nodes (each a `redis://` or `rediss://` URL).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl std::fmt::Debug for Target {
    /// Passwords left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Target {
    /// Parses `spec`:
    ///
    /// - `redis://[user:password@]host[:port][/db]`, `rediss://...` (TLS):
    ///   one server;
    /// - `redis+cluster://[user:password@]host:port,host:port,...` (or
    ///   `rediss+cluster://`): a Redis Cluster, given some of its nodes;
    /// - `redis://host:port,redis://host:port,...`: a cluster too.
    pub(crate) fn parse(spec: &str) -> Result<Target> {
        let spec = spec.trim();
        let bad =
            |why: &str| Error::Config(format!("invalid remote URL '{}': {why}", redact(spec)));
        if spec.is_empty() {
            return Err(bad("it is empty"));
        }
        for (cluster_scheme, scheme) in [
            ("redis+cluster://", "redis://"),
            ("rediss+cluster://", "rediss://"),
        ] {
            let Some(rest) = spec.strip_prefix(cluster_scheme) else {
                continue;
            };
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((a, h)) => (format!("{a}@"), h),
                None => (String::new(), rest),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("{scheme}{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(bad("no cluster node is named"));
            }
            return Ok(Target::Cluster(nodes));
        }
        let parts: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        for p in &parts {
            if !(p.starts_with("redis://") || p.starts_with("rediss://")) {
                return Err(bad(
                    "expected redis://, rediss://, redis+cluster:// or a comma-separated list of redis:// URLs",
                ));
            }
        }
        match parts.as_slice() {
            [one] => Ok(Target::Single((*one).to_owned())),
            many => Ok(Target::Cluster(
                many.iter().map(|s| (*s).to_owned()).collect(),
            )),
        }
    }

    /// The URLs, passwords replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        match self {
            Target::Single(u) => redact(u),
            Target::Cluster(nodes) => {
                let n: Vec<String> = nodes.iter().map(|u| redact(u)).collect();
                format!("cluster {}", n.join(","))
            }
        }
    }
}

/// `url` with the password (the part between `:` and `@` after the
/// scheme) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0").unwrap(),
            Target::Single("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://u:p@a:1,b:2").unwrap(),
            Target::Cluster(vec!["redis://u:p@a:1".into(), "redis://u:p@b:2".into()])
        );
        assert_eq!(
            Target::parse("redis://a:1, redis://b:2").unwrap(),
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert!(Target::parse("").is_err());
        assert!(Target::parse("http://a").is_err());
        assert!(Target::parse("redis+cluster://").is_err());
        let e = Target::parse("memcached://user:hunter2@a")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("rediss://user:pw@h:1/2"), "rediss://user:***@h:1/2");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(
            Target::parse("redis+cluster://u:secret@a:1,b:2")
                .unwrap()
                .redacted(),
            "cluster redis://u:***@a:1,redis://u:***@b:2"
        );
    }
}
