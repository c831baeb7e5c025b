//! Pacemaker's parameter digest of a one-shot operation: whether an operation in the
//! history ran with the parameters configured now (Pacemaker 2.1's
//! `rsc_action_digest_cmp` for a non-recurring operation, `calculate_operation_digest`).
//!
//! The digest is the MD5 (hex) of the parameters written as one XML element,
//! `<parameters name="value" .../>`, names in byte order, values XML-escaped, after a
//! space and before a newline (Pacemaker's "v1" digest). Pacemaker leaves out every
//! `CRM_meta_*` value of a one-shot operation, so a start's digest is that of the
//! resource's parameters alone: checked against 1,784 recorded start digests of the
//! conformance scenarios. Pacer's own agents record no digest, so this only ever
//! compares histories imported from Pacemaker.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::api::Param;
use crate::api::cluster::FenceDeviceSpec;

/// The digest of `params` as Pacemaker computes it for a one-shot operation.
pub(super) fn operation_digest(params: &BTreeMap<String, String>) -> String {
    let mut text = String::from(" <parameters");
    for (name, value) in params {
        text.push(' ');
        text.push_str(name);
        text.push_str("=\"");
        escape_into(&mut text, value);
        text.push('"');
    }
    text.push_str("/>\n");
    Md5::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// XML attribute escaping as Pacemaker writes attribute values.
fn escape_into(text: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '&' => text.push_str("&amp;"),
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '"' => text.push_str("&quot;"),
            other => text.push(other),
        }
    }
}

/// The digest of a resource's configured parameters, when Pacer knows them all: a
/// parameter kept in a secret file has a value only the node reads.
pub(super) fn resource_digest(params: &BTreeMap<String, Param>) -> Option<String> {
    let mut plain = BTreeMap::new();
    for (name, param) in params {
        plain.insert(name.clone(), param.plain()?.to_string());
    }
    Some(operation_digest(&plain))
}

/// The digest of a fence device's parameters, when they are all agent parameters: the
/// fencer's own (`pcmk_host_list`, `pcmk_delay_max`, ...) are fields of a
/// `FenceDevice`, and how Pacemaker spelled them is not kept, so with any of them set
/// the digest is unknown.
pub(super) fn fence_device_digest(device: &FenceDeviceSpec) -> Option<String> {
    let fencer_options = !device.host_list.is_empty()
        || !device.host_map.is_empty()
        || device.host_check.is_some()
        || device.host_argument.is_some()
        || device.delay.is_some()
        || device.delay_max.is_some()
        || device.timeout.is_some()
        || device.retries.is_some();
    if fencer_options { None } else { resource_digest(&device.params) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_what_pacemaker_recorded() {
        // As recorded in the conformance scenarios (1-a-then-bm-move-b, a Dummy without
        // parameters; bug-5014-A-stop-B-started, an address).
        assert_eq!(operation_digest(&BTreeMap::new()), "f2317cad3d54cec5d7d7aa7d0bf35cf8");
        let params: BTreeMap<String, String> =
            [("ip", "192.168.122.101"), ("cidr_netmask", "32")].into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        assert_eq!(operation_digest(&params), "aa23ce1258f88c74b84a630cb3427eea");
        let params: BTreeMap<String, String> = [("text".to_string(), "a<b & \"c\"".to_string())].into_iter().collect();
        assert_ne!(operation_digest(&params), operation_digest(&[("text".to_string(), "a<b & c".to_string())].into_iter().collect()));
    }
}
