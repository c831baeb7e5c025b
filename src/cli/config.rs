//! Where the cluster is and as whom to connect: the global flags (`--etcd`,
//! `--prefix`, `--etcd-ca`, `--etcd-cert`, `--etcd-key`) over the config file
//! (`--config FILE`, `PACER_CONFIG`, or `/etc/pacer/config.yaml` when it exists).
//! Every command and daemon connects through `Global::connect`; bad TLS files and a
//! bad config file are refused here, naming the file, before anything connects.

use std::path::{Path, PathBuf};

use crate::store::Store;
use crate::store::tls::{ConnectConfig, TlsFiles};

/// The config file read when none is given, if it exists.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/pacer/config.yaml";
/// Where etcd is looked for when neither a flag nor the config file says.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
/// The key prefix when neither a flag nor the config file says.
const DEFAULT_PREFIX: &str = "/pacer";

/// A config file or a combination of options that cannot be used: refused input (exit
/// 1), found before anything connects.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(String);

/// The options every command takes: where the cluster is, and as whom.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct Global {
    /// etcd endpoints, comma-separated (default: the config file's, else
    /// http://127.0.0.1:2379). `https://` for TLS.
    #[arg(long, global = true, env = "PACER_ETCD")]
    pub(crate) etcd: Option<String>,
    /// Key prefix of this cluster in etcd (default: the config file's, else /pacer).
    #[arg(long, global = true, env = "PACER_PREFIX")]
    pub(crate) prefix: Option<String>,
    /// The CA certificate etcd's server certificate is checked against (PEM).
    #[arg(long, global = true, env = "PACER_ETCD_CA", value_name = "FILE")]
    pub(crate) etcd_ca: Option<PathBuf>,
    /// This client's certificate (PEM); its common name is the etcd user.
    #[arg(long, global = true, env = "PACER_ETCD_CERT", value_name = "FILE")]
    pub(crate) etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "PACER_ETCD_KEY", value_name = "FILE")]
    pub(crate) etcd_key: Option<PathBuf>,
    /// A config file (YAML: endpoints, prefix, ca, cert, key; relative paths are
    /// relative to the file). Default /etc/pacer/config.yaml, read only if it exists.
    /// Flags and their variables override it.
    #[arg(long, global = true, env = "PACER_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// The config file: every field optional, no other field accepted.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// etcd endpoints: a list, or one comma-separated string.
    #[serde(default, deserialize_with = "endpoints")]
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

const CONFIG_FIELDS: &[&str] = &["endpoints", "prefix", "ca", "cert", "key"];

fn endpoints<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match <OneOrMany as serde::Deserialize>::deserialize(deserializer)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(list) => list,
    })
}

impl ConfigFile {
    /// Reads and checks a config file; relative paths in it become relative to its
    /// directory. An empty file is an empty config.
    pub(crate) fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError(format!("read {}: {error}", path.display())))?;
        let mut config = ConfigFile::parse(&text).map_err(|reason| ConfigError(format!("read {}:{reason}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [&mut config.ca, &mut config.cert, &mut config.key].into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses the text of a config file; the error is `LINE:COL: reason`.
    fn parse(text: &str) -> Result<ConfigFile, String> {
        let documents = crate::api::yaml::parse_documents(text).map_err(|error| error.to_string())?;
        let document = match documents.as_slice() {
            [] => return Ok(ConfigFile::default()),
            [one] => one,
            [_, second, ..] => return Err(format!("{}: one document expected", second.start)),
        };
        let Some(map) = document.value.as_object() else {
            return Err(format!("{}: expected a mapping of endpoints, prefix, ca, cert, key", document.start));
        };
        if let Some(unknown) = map.keys().find(|key| !CONFIG_FIELDS.contains(&key.as_str())) {
            let position = document.position_of(&crate::api::path::FieldPath::of(&[unknown]));
            return Err(format!("{position}: unknown field {unknown:?}, expected one of {}", CONFIG_FIELDS.join(", ")));
        }
        serde_json::from_value(document.value.clone()).map_err(|error| format!("{}: {error}", document.start))
    }
}

impl Global {
    /// The config file to read: the one given (it must exist), else the default when
    /// it exists.
    fn config_file(&self) -> anyhow::Result<ConfigFile> {
        match &self.config {
            Some(path) => ConfigFile::read(path),
            None if Path::new(DEFAULT_CONFIG).exists() => ConfigFile::read(Path::new(DEFAULT_CONFIG)),
            None => Ok(ConfigFile::default()),
        }
    }

    /// Flags over the config file over the defaults. TLS files are not read here.
    pub(crate) fn connect_config(&self) -> anyhow::Result<ConnectConfig> {
        let file = self.config_file()?;
        let endpoints = match &self.etcd {
            Some(endpoints) => vec![endpoints.clone()],
            None if !file.endpoints.is_empty() => file.endpoints,
            None => vec![DEFAULT_ENDPOINT.to_string()],
        };
        let prefix = self.prefix.clone().or(file.prefix).unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        let tls = TlsFiles { ca: self.etcd_ca.clone().or(file.ca), cert: self.etcd_cert.clone().or(file.cert), key: self.etcd_key.clone().or(file.key) };
        let uses_https = endpoints.iter().flat_map(|list| list.split(',')).any(|endpoint| endpoint.trim().starts_with("https://"));
        anyhow::ensure!(tls.is_empty() || uses_https, "--etcd-ca, --etcd-cert and --etcd-key need https:// endpoints (got {})", endpoints.join(","));
        anyhow::ensure!(!uses_https || tls.ca.is_some(), "an https:// endpoint needs the CA of etcd's certificate (--etcd-ca or ca: in the config file)");
        Ok(ConnectConfig { endpoints, prefix, tls: (!tls.is_empty()).then_some(tls) })
    }

    /// The key prefix, as `connect` would use it.
    pub(crate) fn prefix(&self) -> anyhow::Result<String> {
        Ok(self.connect_config()?.prefix)
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Store> {
        let config = self.connect_config()?;
        Store::connect_with(&config).await.map_err(anyhow::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_takes_a_list_or_a_string_of_endpoints() {
        let config = ConfigFile::parse("endpoints: [https://a:2379, https://b:2379]\nprefix: /x\nca: ca.crt\n").expect("parses");
        assert_eq!(config.endpoints, ["https://a:2379", "https://b:2379"]);
        assert_eq!(config.prefix.as_deref(), Some("/x"));
        let config = ConfigFile::parse("endpoints: https://a:2379,https://b:2379\n").expect("parses");
        assert_eq!(config.endpoints, ["https://a:2379,https://b:2379"]);
        assert_eq!(ConfigFile::parse("").expect("empty"), ConfigFile::default());
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_position() {
        let error = ConfigFile::parse("endpoints: https://a:2379\ncacert: ca.crt\n").expect_err("refused");
        assert_eq!(error, "2:1: unknown field \"cacert\", expected one of endpoints, prefix, ca, cert, key");
        assert!(ConfigFile::parse("- a\n").is_err());
        assert!(ConfigFile::parse("prefix: [1]\n").is_err());
    }

    #[test]
    fn flags_override_the_file_and_relative_paths_follow_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "endpoints: https://127.0.0.1:1\nprefix: /file\nca: pki/ca.crt\ncert: pki/a.crt\nkey: pki/a.key\n").expect("write");
        let global = Global { config: Some(path.clone()), prefix: Some("/flag".into()), etcd_key: Some("/k".into()), ..Global::default() };
        let config = global.connect_config().expect("config");
        assert_eq!(config.prefix, "/flag");
        assert_eq!(config.endpoints, ["https://127.0.0.1:1"]);
        let tls = config.tls.expect("tls");
        assert_eq!(tls.ca, Some(dir.path().join("pki/ca.crt")));
        assert_eq!(tls.key, Some(PathBuf::from("/k")));
        let missing = Global { config: Some(dir.path().join("absent.yaml")), ..Global::default() };
        let error = format!("{:#}", missing.connect_config().expect_err("missing file"));
        assert!(error.contains("absent.yaml"), "{error}");
    }
}
