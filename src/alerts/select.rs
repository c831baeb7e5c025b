//! Which alerts run and which events each gets (pure): an `Alert` object read into an
//! `AlertConfig`, and Pacemaker's `select` filters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::cluster::{AlertEvent, AlertSpec};
use crate::api::records::{EventKind, EventRecord};
use crate::api::strftime::{DEFAULT_TIMESTAMP_FORMAT, TimestampFormat};
use crate::api::{Object, Spec};

/// Pacemaker's default alert timeout (`PCMK__ALERT_DEFAULT_TIMEOUT_MS`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An alert as its worker runs it (a disabled one's worker only keeps its cursor at
/// the end of the log).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    pub name: String,
    /// The object's uid: a cursor of another uid belongs to an alert deleted since.
    pub uid: String,
    pub spec: AlertSpec,
    pub timeout: Duration,
    pub format: TimestampFormat,
}

impl AlertConfig {
    /// The enabled alerts among `objects`, by name.
    pub fn enabled(objects: &[Object]) -> BTreeMap<String, AlertConfig> {
        let mut alerts = AlertConfig::all(objects);
        alerts.retain(|_, alert| alert.spec.enabled);
        alerts
    }

    /// Every alert among `objects`, enabled or not, by name. An alert without a uid
    /// (never stored) or whose format does not parse (refused by apply, so only from
    /// an older version) is left out with a warning.
    pub fn all(objects: &[Object]) -> BTreeMap<String, AlertConfig> {
        let mut alerts = BTreeMap::new();
        for object in objects {
            let Spec::Alert(spec) = &object.spec else { continue };
            let name = object.name().to_string();
            let Some(uid) = object.metadata.uid.clone() else {
                tracing::warn!(alert = %name, "skipping an alert without a uid");
                continue;
            };
            let format = match TimestampFormat::parse(spec.timestamp_format.as_deref().unwrap_or(DEFAULT_TIMESTAMP_FORMAT)) {
                Ok(format) => format,
                Err(reason) => {
                    tracing::warn!(alert = %name, %reason, "skipping an alert whose timestampFormat does not parse");
                    continue;
                }
            };
            let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |timeout| Duration::from_millis(timeout.as_millis())).max(Duration::from_millis(1));
            alerts.insert(name.clone(), AlertConfig { name, uid, spec: spec.clone(), timeout, format });
        }
        alerts
    }

    /// Whether this alert gets `event`: Pacemaker's kinds only (never decisions or
    /// failed deliveries), of the kinds selected (`events`, empty: all), attribute
    /// events only for the attributes selected (`attributes`, empty: all); and, as
    /// Pacemaker does, never a probe that found what was expected.
    pub fn selects(&self, event: &EventRecord) -> bool {
        let Some(kind) = event.kind.alert_kind() else { return false };
        if !self.spec.events.is_empty() && !self.spec.events.contains(&kind) {
            return false;
        }
        if kind == AlertEvent::Attribute
            && !self.spec.attributes.is_empty()
            && !event.attribute_name.as_ref().is_some_and(|name| self.spec.attributes.contains(name))
        {
            return false;
        }
        !is_expected_probe(event)
    }
}

/// A probe (a monitor with interval 0) that returned what was expected: Pacemaker's
/// `lrmd_send_resource_alert` sends nothing for it.
fn is_expected_probe(event: &EventRecord) -> bool {
    event.kind == EventKind::Resource
        && event.interval_ms == 0
        && event.task.as_deref().is_some_and(|task| task.eq_ignore_ascii_case("monitor"))
        && event.rc.is_some()
        && event.rc == event.target_rc
}

/// Node ids for `CRM_alert_nodeid`: each `Node` object's creation sequence.
pub fn node_ids(objects: &[Object]) -> Arc<BTreeMap<String, i64>> {
    Arc::new(
        objects
            .iter()
            .filter(|object| matches!(object.spec, Spec::Node(_)))
            .filter_map(|object| Some((object.name().to_string(), object.metadata.creation_sequence?)))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};

    /// The objects of `yaml`, each given a uid as the store would.
    pub(crate) fn parse_objects_for_tests(yaml: &str) -> Vec<Object> {
        let loaded = load(&[Source { name: "test.yaml".into(), text: yaml.to_string() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded
            .manifests
            .into_iter()
            .map(|manifest| {
                let mut object = manifest.object;
                object.metadata.uid = Some(format!("uid-{}", object.name()));
                object
            })
            .collect()
    }

    fn alert(yaml: &str) -> AlertConfig {
        let objects = parse_objects_for_tests(yaml);
        let mut alerts = AlertConfig::enabled(&objects);
        alerts.pop_first().map(|(_, alert)| alert).expect("one enabled alert")
    }

    fn event(kind: EventKind) -> EventRecord {
        EventRecord::new(kind, "n1", 0, "ok")
    }

    const BASE: &str = "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata:\n  name: a\nspec:\n  receiver:\n    exec:\n      path: /bin/true\n";

    #[test]
    fn all_pacemaker_kinds_by_default_and_never_pacers_own() {
        let alert = alert(BASE);
        for kind in [EventKind::Node, EventKind::Fencing, EventKind::Resource, EventKind::Attribute] {
            assert!(alert.selects(&event(kind)), "{kind:?}");
        }
        assert!(!alert.selects(&event(EventKind::Decision)));
        assert!(!alert.selects(&event(EventKind::Delivery)));
        assert_eq!(alert.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn kinds_and_attribute_names_filter() {
        let alert = alert(&format!("{BASE}  events: [Attribute, Node]\n  attributes: [pingd]\n  timeout: 5s\n"));
        assert!(alert.selects(&event(EventKind::Node)));
        assert!(!alert.selects(&event(EventKind::Resource)));
        let mut attribute = event(EventKind::Attribute);
        assert!(!alert.selects(&attribute), "no name: not pingd");
        attribute.attribute_name = Some("pingd".into());
        assert!(alert.selects(&attribute));
        attribute.attribute_name = Some("other".into());
        assert!(!alert.selects(&attribute));
        assert_eq!(alert.timeout, Duration::from_secs(5));
    }

    #[test]
    fn expected_probes_are_not_alerted_but_failed_ones_are() {
        let alert = alert(BASE);
        let mut probe = event(EventKind::Resource);
        probe.task = Some("monitor".into());
        probe.rc = Some(7);
        probe.target_rc = Some(7);
        assert!(!alert.selects(&probe));
        probe.rc = Some(0);
        assert!(alert.selects(&probe));
        probe.interval_ms = 10_000;
        probe.rc = Some(7);
        probe.target_rc = Some(0);
        assert!(alert.selects(&probe));
    }

    #[test]
    fn disabled_alerts_do_not_run() {
        let objects = parse_objects_for_tests(&format!("{BASE}  enabled: false\n"));
        assert!(AlertConfig::enabled(&objects).is_empty());
    }
}
