//! `[abuse] rdap_bootstrap`: IANA's RFC 9224 bootstrap files, read when the configuration
//! is (so `check-config` reports a bad file) and handed to the RDAP client as plain data.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::Value;

/// A bootstrap file that could not be read or is not an RFC 9224 registry.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct BootstrapError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// IANA's RFC 9224 bootstrap registry (`ipv4.json`, `ipv6.json`): network → base URLs.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    entries: Vec<(IpNet, Vec<String>)>,
}

impl Bootstrap {
    /// Reads and merges the files at `paths`.
    pub fn load(paths: &[PathBuf]) -> Result<Bootstrap, BootstrapError> {
        let mut all = Bootstrap::default();
        for path in paths {
            let err = |message: String| BootstrapError {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let one = Bootstrap::parse(&text).map_err(err)?;
            all.entries.extend(one.entries);
        }
        Ok(all)
    }

    /// Parses one file: `{"services": [[["192.0.2.0/24", ...], ["https://rdap.example/"]], ...]}`.
    pub fn parse(text: &str) -> Result<Bootstrap, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let services = json
            .get("services")
            .and_then(Value::as_array)
            .ok_or("no \"services\" array (not an RFC 9224 bootstrap file)")?;
        let mut entries = Vec::new();
        for service in services {
            let (Some(nets), Some(urls)) = (
                service.get(0).and_then(Value::as_array),
                service.get(1).and_then(Value::as_array),
            ) else {
                return Err("a service is not [[networks], [urls]]".into());
            };
            let urls: Vec<String> = urls
                .iter()
                .filter_map(Value::as_str)
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .map(|u| u.trim_end_matches('/').to_string())
                .collect();
            for net in nets.iter().filter_map(Value::as_str) {
                let net: IpNet = net
                    .parse()
                    .map_err(|_| format!("{net:?} is not an IP network"))?;
                entries.push((net, urls.clone()));
            }
        }
        Ok(Bootstrap { entries })
    }

    /// The `https` base URLs for `ip`: those of the most specific network holding it.
    /// The `http` ones a bootstrap file also lists are never used (RFC 9224 §5 prefers the
    /// secure one; we require it).
    pub fn urls_for(&self, ip: IpAddr) -> Vec<String> {
        let Some((_, urls)) = self
            .entries
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
        else {
            return Vec::new();
        };
        urls.iter()
            .filter(|u| u.starts_with("https://"))
            .cloned()
            .collect()
    }
}
