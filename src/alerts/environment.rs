//! The environment of an exec receiver (pure): what Pacemaker 2.1's executor gives an
//! alert agent (`lrmd_send_*_alert` and `exec_alert_list`), so the stock agents in
//! `/usr/share/pacemaker/alerts/` work unchanged. Each kind sets Pacemaker's fields
//! and no others; every variable is set under its `CRM_alert_` name and its legacy
//! `CRM_notify_` twin, as Pacemaker 2.1 does; the alert's parameters follow (their
//! names are checked at apply never to shadow these).
//!
//! Differences, on purpose: the timestamp is the event's (when it happened, by the
//! clock of whoever saw it), not when the agent runs — a delivery can be late, after a
//! leader change; `CRM_alert_node_sequence` is the event's place in the cluster-wide
//! log (Pacemaker's counts the alerts one executor ran); `CRM_alert_nodeid` is the
//! `Node` object's `metadata.creationSequence` (Pacer has no corosync node ids), 0
//! when the node has no `Node` object.

use chrono::{DateTime, FixedOffset};

use super::select::AlertConfig;
use crate::api::records::{EventKind, EventRecord, ExecStatus};

/// What one call of the agent is about.
pub struct Call<'a> {
    pub event: &'a EventRecord,
    pub alert: &'a AlertConfig,
    /// `None`: the alert has no recipients (Pacemaker sets the variable empty).
    pub recipient: Option<&'a str>,
    /// The event's node's id (`CRM_alert_nodeid`).
    pub node_id: i64,
    /// The event's time in the zone the timestamp is written in.
    pub time: DateTime<FixedOffset>,
}

/// The variables of one call, sorted by name (Pacemaker's key and value pairs, and the
/// alert's parameters).
pub fn alert_environment(call: &Call<'_>) -> Vec<(String, String)> {
    let event = call.event;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: String| {
        env.push((format!("CRM_notify_{key}"), value.clone()));
        env.push((format!("CRM_alert_{key}"), value));
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let number = |value: Option<i32>| value.unwrap_or(0).to_string();
    set("kind", event.kind.as_str().to_string());
    set("version", env!("CARGO_PKG_VERSION").to_string());
    set("recipient", call.recipient.unwrap_or_default().to_string());
    set("node_sequence", event.sequence.to_string());
    let micros = u32::try_from(event.time_usec.rem_euclid(1_000_000)).unwrap_or(0);
    set("timestamp", call.alert.format.render(&call.time, micros));
    set("timestamp_epoch", event.time_usec.div_euclid(1_000_000).to_string());
    set("timestamp_usec", format!("{micros:06}"));
    set("node", text(&event.node));
    match event.kind {
        EventKind::Node => {
            set("desc", event.desc.clone());
            set("nodeid", call.node_id.to_string());
        }
        EventKind::Fencing => {
            set("task", text(&event.task));
            set("desc", event.desc.clone());
            set("rc", number(event.rc));
        }
        EventKind::Resource => {
            set("rsc", text(&event.resource));
            set("task", text(&event.task));
            set("interval", event.interval_ms.to_string());
            set("target_rc", number(event.target_rc));
            set("status", event.status.map_or(0, pacemaker_exec_status).to_string());
            set("rc", number(event.rc));
            set("exec_time", event.exec_time_ms.unwrap_or(0).to_string());
            set("desc", event.desc.clone());
        }
        EventKind::Attribute => {
            set("nodeid", call.node_id.to_string());
            set("attribute_name", text(&event.attribute_name));
            set("attribute_value", text(&event.attribute_value));
        }
        // Never delivered (`AlertConfig::selects`); described all the same.
        EventKind::Decision | EventKind::Delivery => set("desc", event.desc.clone()),
    }
    // Parameters kept in files are read by the delivery, just before the run.
    for (name, value) in &call.alert.spec.parameters {
        if let Some(value) = value.plain() {
            env.push((name.clone(), value.to_string()));
        }
    }
    env.sort();
    env
}

/// Pacemaker's numeric op-status (`enum pcmk_exec_status`), what
/// `CRM_alert_status` carries.
fn pacemaker_exec_status(status: ExecStatus) -> i32 {
    match status {
        ExecStatus::Pending => -1,
        ExecStatus::Done => 0,
        ExecStatus::Cancelled => 1,
        ExecStatus::Timeout => 2,
        ExecStatus::NotSupported => 3,
        ExecStatus::Error => 4,
        ExecStatus::ErrorHard => 5,
        ExecStatus::ErrorFatal => 6,
        ExecStatus::NotInstalled => 7,
        ExecStatus::Invalid => 9,
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::alerts::select::tests::parse_objects_for_tests;

    fn config(extra: &str) -> AlertConfig {
        let yaml =
            format!("apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata:\n  name: file\nspec:\n  receiver:\n    exec:\n      path: /bin/true\n{extra}");
        AlertConfig::enabled(&parse_objects_for_tests(&yaml)).pop_first().map(|(_, alert)| alert).expect("one alert")
    }

    fn render(event: &EventRecord, alert: &AlertConfig, recipient: Option<&str>) -> String {
        let time = DateTime::parse_from_rfc3339("2024-06-02T05:04:48+02:00").expect("a time");
        let call = Call { event, alert, recipient, node_id: 7, time };
        alert_environment(&call)
            .iter()
            .filter(|(name, _)| !name.starts_with("CRM_notify_"))
            .map(|(name, value)| {
                let value = if name == "CRM_alert_version" { "VERSION" } else { value.as_str() };
                format!("{name}={value}\n")
            })
            .collect()
    }

    #[test]
    fn a_resource_operation_as_pacemaker_describes_it() {
        let mut event = EventRecord::new(EventKind::Resource, "n2", 1_717_297_488_309_814, "not running");
        event.sequence = 42;
        event.node = Some("n2".into());
        event.resource = Some("web".into());
        event.task = Some("monitor".into());
        event.interval_ms = 10_000;
        event.rc = Some(7);
        event.target_rc = Some(0);
        event.status = Some(ExecStatus::Done);
        event.exec_time_ms = Some(12);
        let alert = config("  parameters:\n    debug_exec_order: \"true\"\n");
        expect![[r#"
            CRM_alert_desc=not running
            CRM_alert_exec_time=12
            CRM_alert_interval=10000
            CRM_alert_kind=resource
            CRM_alert_node=n2
            CRM_alert_node_sequence=42
            CRM_alert_rc=7
            CRM_alert_recipient=/var/log/alerts
            CRM_alert_rsc=web
            CRM_alert_status=0
            CRM_alert_target_rc=0
            CRM_alert_task=monitor
            CRM_alert_timestamp=05:04:48.309814
            CRM_alert_timestamp_epoch=1717297488
            CRM_alert_timestamp_usec=309814
            CRM_alert_version=VERSION
            debug_exec_order=true
        "#]]
        .assert_eq(&render(&event, &alert, Some("/var/log/alerts")));
    }

    #[test]
    fn node_fencing_and_attribute_events_set_their_own_fields() {
        let alert = config("  timestampFormat: \"%Y-%m-%d %H:%M:%S.%3N\"\n");
        let mut node = EventRecord::new(EventKind::Node, "scheduler", 1_717_297_488_000_001, "lost");
        node.sequence = 1;
        node.node = Some("n3".into());
        let mut fencing = EventRecord::new(EventKind::Fencing, "n1", 1_717_297_489_500_000, "Operation reboot of n3 by n1: OK");
        fencing.sequence = 2;
        fencing.node = Some("n3".into());
        fencing.task = Some("reboot".into());
        fencing.rc = Some(0);
        let mut attribute = EventRecord::new(EventKind::Attribute, "n1", 1_717_297_490_000_000, "set");
        attribute.sequence = 3;
        attribute.node = Some("n1".into());
        attribute.attribute_name = Some("pingd".into());
        attribute.attribute_value = Some("100".into());
        let all = [&node, &fencing, &attribute].map(|event| render(event, &alert, None)).join("--\n");
        expect![[r#"
            CRM_alert_desc=lost
            CRM_alert_kind=node
            CRM_alert_node=n3
            CRM_alert_node_sequence=1
            CRM_alert_nodeid=7
            CRM_alert_recipient=
            CRM_alert_timestamp=2024-06-02 05:04:48.000
            CRM_alert_timestamp_epoch=1717297488
            CRM_alert_timestamp_usec=000001
            CRM_alert_version=VERSION
            --
            CRM_alert_desc=Operation reboot of n3 by n1: OK
            CRM_alert_kind=fencing
            CRM_alert_node=n3
            CRM_alert_node_sequence=2
            CRM_alert_rc=0
            CRM_alert_recipient=
            CRM_alert_task=reboot
            CRM_alert_timestamp=2024-06-02 05:04:48.500
            CRM_alert_timestamp_epoch=1717297489
            CRM_alert_timestamp_usec=500000
            CRM_alert_version=VERSION
            --
            CRM_alert_attribute_name=pingd
            CRM_alert_attribute_value=100
            CRM_alert_kind=attribute
            CRM_alert_node=n1
            CRM_alert_node_sequence=3
            CRM_alert_nodeid=7
            CRM_alert_recipient=
            CRM_alert_timestamp=2024-06-02 05:04:48.000
            CRM_alert_timestamp_epoch=1717297490
            CRM_alert_timestamp_usec=000000
            CRM_alert_version=VERSION
        "#]]
        .assert_eq(&all);
    }

    #[test]
    fn every_variable_has_its_legacy_twin() {
        let alert = config("");
        let event = EventRecord::new(EventKind::Node, "scheduler", 0, "member");
        let env = alert_environment(&Call { event: &event, alert: &alert, recipient: Some("x"), node_id: 0, time: DateTime::UNIX_EPOCH.fixed_offset() });
        let alert_names: Vec<&str> = env.iter().filter_map(|(name, _)| name.strip_prefix("CRM_alert_")).collect();
        let notify_names: Vec<&str> = env.iter().filter_map(|(name, _)| name.strip_prefix("CRM_notify_")).collect();
        assert_eq!(alert_names, notify_names);
    }
}
