//! The whole environment of an agent, built from nothing: PATH with the shims first,
//! `LANG=C`, the `HA_*` directories of the node, the shims' per-operation variables
//! and, for OCF agents, the OCF variables. Parameters reach an agent only here (never
//! through a shell string).

use std::collections::BTreeMap;
use std::path::Path;

use super::OperationRequest;

/// The feature set Pacemaker 2.1.5 announces (`OCF_RESKEY_crm_feature_set`);
/// ocf-shellfuncs picks `crm_attribute --promotion` over `crm_master` from 3.10.0 on.
pub(crate) const CRM_FEATURE_SET: &str = "3.16.2";

/// The per-node, per-operation values every agent class gets.
pub(crate) struct Common<'a> {
    pub shim_dir: &'a Path,
    pub system_path: &'a str,
    pub node: &'a str,
    pub rsctmp: &'a Path,
    pub varrun: &'a Path,
    pub node_attributes_file: &'a Path,
    pub updates_file: &'a Path,
    /// `PACER_RESOURCE` and `PACER_EXECUTOR`: the marker every process the agent
    /// starts inherits, by which its leftovers are found after a stop (`sweep.rs`).
    pub resource_marker: &'a str,
    pub executor_marker: &'a str,
}

/// The environment of any resource agent (LSB and systemd get only this).
pub(crate) fn common(common: &Common<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        env.insert(key.to_string(), value);
    };
    put("PATH", format!("{}:{}", common.shim_dir.display(), common.system_path));
    put("LANG", "C".into());
    put("HA_RSCTMP", common.rsctmp.display().to_string());
    put("HA_VARRUN", common.varrun.display().to_string());
    // Agents call `${HA_SBIN_DIR}/crm_attribute` by path (pacemaker:Stateful,
    // ocf_promotion_score): the shims must be found there too.
    put("HA_SBIN_DIR", common.shim_dir.display().to_string());
    put("PACER_NODE_NAME", common.node.to_string());
    put("PACER_NODE_ATTRIBUTES", common.node_attributes_file.display().to_string());
    put("PACER_ATTR_UPDATES", common.updates_file.display().to_string());
    put(super::sweep::RESOURCE_VARIABLE, common.resource_marker.to_string());
    put(super::sweep::EXECUTOR_VARIABLE, common.executor_marker.to_string());
    env
}

/// A parameter or meta name that an environment variable can carry.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['=', '\0']) {
        return Err(format!("parameter name {key:?} cannot be passed in the environment"));
    }
    Ok(())
}

/// Adds the OCF variables of Pacemaker's executor (services_ocf.c): OCF_ROOT, the
/// resource's identity, `OCF_RESKEY_<param>` per parameter (`OCF_CHECK_LEVEL` is
/// passed under its own name, as Pacemaker does), and the `CRM_meta_*` values:
/// `timeout` and `interval` in milliseconds, `name` (the action) and `on_node`, then
/// the request's meta (which may override them), each key with `-` turned into `_`.
pub(crate) fn ocf(env: &mut BTreeMap<String, String>, request: &OperationRequest, ocf_root: &Path, provider: &str) -> Result<(), String> {
    let mut put = |key: String, value: &str| -> Result<(), String> {
        if value.contains('\0') {
            return Err(format!("the value of {key} holds a NUL byte"));
        }
        env.insert(key, value.to_string());
        Ok(())
    };
    put("OCF_ROOT".into(), &ocf_root.display().to_string())?;
    put("OCF_RA_VERSION_MAJOR".into(), "1")?;
    put("OCF_RA_VERSION_MINOR".into(), "1")?;
    put("OCF_EXIT_REASON_PREFIX".into(), super::process::EXIT_REASON_PREFIX)?;
    put("OCF_RESOURCE_INSTANCE".into(), &request.resource)?;
    put("OCF_RESOURCE_TYPE".into(), &request.agent.agent_type)?;
    put("OCF_RESOURCE_PROVIDER".into(), provider)?;
    put("OCF_RESKEY_crm_feature_set".into(), CRM_FEATURE_SET)?;
    put("OCF_RESKEY_CRM_meta_timeout".into(), &request.timeout.as_millis().to_string())?;
    put("OCF_RESKEY_CRM_meta_interval".into(), &request.interval_ms.to_string())?;
    put("OCF_RESKEY_CRM_meta_name".into(), &request.action)?;
    if !request.node.is_empty() {
        put("OCF_RESKEY_CRM_meta_on_node".into(), &request.node)?;
    }
    for (key, value) in &request.meta {
        check_key(key)?;
        put(format!("OCF_RESKEY_CRM_meta_{}", key.replace('-', "_")), value)?;
    }
    for (key, value) in &request.params {
        check_key(key)?;
        let name = if key == "OCF_CHECK_LEVEL" { key.clone() } else { format!("OCF_RESKEY_{key}") };
        put(name, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn request() -> OperationRequest {
        OperationRequest {
            resource: "db:1".into(),
            agent: "ocf:pacemaker:Stateful".parse().expect("agent"),
            action: "monitor".into(),
            interval_ms: 10_000,
            timeout: Duration::from_secs(20),
            params: BTreeMap::from([("state".to_string(), "/x y;$(rm -rf /)".to_string()), ("OCF_CHECK_LEVEL".to_string(), "10".to_string())]),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::from([("clone-max".to_string(), "2".to_string()), ("notify_type".to_string(), "pre".to_string())]),
            node: "n1".into(),
            node_attributes: BTreeMap::new(),
            state_dir: PathBuf::from("/tmp/s"),
        }
    }

    #[test]
    fn ocf_variables_follow_pacemaker() {
        let mut env = BTreeMap::new();
        ocf(&mut env, &request(), Path::new("/usr/lib/ocf"), "pacemaker").expect("env");
        let get = |key: &str| env.get(key).map(String::as_str);
        assert_eq!(get("OCF_ROOT"), Some("/usr/lib/ocf"));
        assert_eq!(get("OCF_RESOURCE_INSTANCE"), Some("db:1"));
        assert_eq!(get("OCF_RESOURCE_TYPE"), Some("Stateful"));
        assert_eq!(get("OCF_RESOURCE_PROVIDER"), Some("pacemaker"));
        // A value is passed verbatim: no shell ever reads it as code.
        assert_eq!(get("OCF_RESKEY_state"), Some("/x y;$(rm -rf /)"));
        assert_eq!(get("OCF_CHECK_LEVEL"), Some("10"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_clone_max"), Some("2"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_notify_type"), Some("pre"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_timeout"), Some("20000"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_interval"), Some("10000"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_on_node"), Some("n1"));
    }

    #[test]
    fn names_an_environment_cannot_hold_are_refused() {
        let mut bad = request();
        bad.params.insert("a=b".into(), "x".into());
        assert!(ocf(&mut BTreeMap::new(), &bad, Path::new("/usr/lib/ocf"), "p").is_err());
        let mut nul = request();
        nul.params.insert("a".into(), "x\0y".into());
        assert!(ocf(&mut BTreeMap::new(), &nul, Path::new("/usr/lib/ocf"), "p").is_err());
    }
}
