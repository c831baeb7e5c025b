//! Small CIBs, one mapping rule each.

use super::status::{LivenessContext, Membership, liveness};
use super::*;
use crate::api::Kind;
use crate::api::constraint::{ExpressionOperation, OrderKind};
use crate::api::records::ExecStatus;
use crate::api::resource::Role;
use crate::api::{Score, Spec};
use crate::scheduler::snapshot::NodeLiveness;

fn cib(configuration: &str, status: &str) -> String {
    format!(r#"<cib have-quorum="1" execution-date="1700000000"><configuration>{configuration}</configuration><status>{status}</status></cib>"#)
}

fn imported(configuration: &str, status: &str) -> Imported {
    import(&cib(configuration, status)).expect("imports")
}

fn spec<'a>(imported: &'a Imported, kind: Kind, name: &str) -> &'a Spec {
    &imported.objects.iter().find(|object| object.kind() == kind && object.name().as_str() == name).unwrap_or_else(|| panic!("no {kind}/{name}")).spec
}

fn has_unmapped(imported: &Imported, element: &str, reason_part: &str) -> bool {
    imported.unmapped.iter().any(|unmapped| unmapped.element == element && unmapped.reason.contains(reason_part))
}

const NODES: &str = r#"<nodes><node id="1" uname="n1"/><node id="2" uname="n2"><instance_attributes id="n2-a">
    <nvpair id="n2-s" name="standby" value="on"/><nvpair id="n2-r" name="rack" value="r2"/></instance_attributes>
    <utilization id="n2-u"><nvpair id="n2-cpu" name="cpu" value="8"/></utilization></node></nodes>"#;

#[test]
fn documents_that_are_not_a_cib_are_errors() {
    assert!(matches!(import("not xml <"), Err(CibError::Xml(_))));
    assert!(matches!(import("<html/>"), Err(CibError::NotCib(_))));
    assert!(matches!(import("<cib><status/></cib>"), Err(CibError::NotCib(_))));
}

#[test]
fn nodes_and_cluster_options_are_mapped() {
    let configuration = format!(
        r#"<crm_config><cluster_property_set id="o">
            <nvpair id="o1" name="stonith-enabled" value="no"/><nvpair id="o2" name="no-quorum-policy" value="freeze"/>
            <nvpair id="o3" name="dc-version" value="2.1.5"/><nvpair id="o4" name="stop-all-resources" value="true"/>
            <nvpair id="o5" name="cluster-recheck-interval" value="2min"/></cluster_property_set></crm_config>
        {NODES}<resources/><constraints/>
        <rsc_defaults><meta_attributes id="d"><nvpair id="d1" name="resource-stickiness" value="100"/></meta_attributes></rsc_defaults>"#
    );
    let result = imported(&configuration, "");
    let Spec::ClusterPolicy(policy) = spec(&result, Kind::ClusterPolicy, "cluster") else { panic!("policy") };
    assert!(!policy.stonith_enabled);
    assert_eq!(policy.no_quorum_policy, crate::api::cluster::NoQuorumPolicy::Freeze);
    assert_eq!(policy.default_resource_stickiness, Score::new(100));
    assert_eq!(policy.cluster_recheck_interval.as_millis(), 120_000);
    assert!(has_unmapped(&result, "nvpair", "stop-all-resources"));
    assert!(!result.unmapped.iter().any(|unmapped| unmapped.reason.contains("dc-version")), "informational options are ignored");
    let Spec::Node(n2) = spec(&result, Kind::Node, "n2") else { panic!("node") };
    assert!(n2.standby);
    assert_eq!(n2.attributes.get("rack").map(|value| value.as_str()), Some("r2"));
    assert_eq!(n2.utilization.get("cpu"), Some(&8));
    assert_eq!(result.now, Some(1_700_000_000));
    assert_eq!(result.objects.iter().map(|object| object.kind()).collect::<Vec<_>>(), [Kind::Node, Kind::Node, Kind::ClusterPolicy]);
}

#[test]
fn clones_fold_into_their_child_and_keep_max_unset() {
    let configuration = format!(
        r#"{NODES}<resources>
        <master id="ms-db"><meta_attributes id="m"><nvpair id="m1" name="master-max" value="1"/>
            <nvpair id="m2" name="notify" value="true"/><nvpair id="m3" name="target-role" value="Master"/></meta_attributes>
          <primitive id="db" class="ocf" provider="heartbeat" type="Stateful"><operations>
            <op id="db-mon" name="monitor" interval="10s" role="Master" timeout="20"/>
            <op id="db-mon2" name="monitor" interval="11s" role="Slave"/></operations></primitive></master>
        <primitive id="web" class="ocf" provider="heartbeat" type="apache"/></resources>
        <constraints><rsc_colocation id="c" rsc="web" with-rsc="ms-db" with-rsc-role="Master" score="INFINITY"/></constraints>
        <rsc_defaults><meta_attributes id="d"><nvpair id="d1" name="migration-threshold" value="3"/></meta_attributes></rsc_defaults>"#
    );
    let result = imported(&configuration, "");
    assert_eq!(result.clone_ids.get("ms-db").map(String::as_str), Some("db"));
    let Spec::Resource(db) = spec(&result, Kind::Resource, "db") else { panic!("resource") };
    let clone = db.clone.as_ref().expect("cloned");
    assert_eq!(clone.max, None, "Pacemaker's default clone-max is the scheduler's to apply");
    assert!(clone.notify);
    assert_eq!(clone.promotable.as_ref().and_then(|promotable| promotable.promoted_max), Some(1));
    assert_eq!(db.meta.target_role, Some(Role::Promoted));
    assert_eq!(db.meta.migration_threshold, Some(Score::new(3)), "rsc_defaults are inherited");
    assert_eq!(db.operations[0].role, Some(Role::Promoted));
    assert_eq!(db.operations[1].role, Some(Role::Unpromoted));
    let Spec::Colocation(colocation) = spec(&result, Kind::Colocation, "c") else { panic!("colocation") };
    assert_eq!(colocation.with_resource.as_ref().map(|name| name.as_str()), Some("db"));
    assert_eq!(colocation.with_role, Some(Role::Promoted));
}

#[test]
fn invalid_ids_are_renamed_and_references_follow() {
    let configuration = format!(
        r#"{NODES}<resources><group id="g:1"><primitive id="a:1" class="lsb" type="a"/><primitive id="b" class="systemd" type="b.service"/></group></resources>
        <constraints><rsc_location id="l" rsc="g:1" node="n1" score="-INFINITY"/></constraints>"#
    );
    let status = r#"<node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member"><lrm id="1"><lrm_resources>
        <lrm_resource id="a:1" class="lsb" type="a"><lrm_rsc_op id="x" operation="start" call-id="4" rc-code="0" op-status="0" interval="0"/></lrm_resource>
        </lrm_resources></lrm></node_state>"#;
    let result = imported(&configuration, status);
    let Spec::Group(group) = spec(&result, Kind::Group, "g_1") else { panic!("group") };
    assert_eq!(group.members.iter().map(|name| name.as_str()).collect::<Vec<_>>(), ["a_1", "b"]);
    let Spec::Location(location) = spec(&result, Kind::Location, "l") else { panic!("location") };
    assert_eq!(location.resource.as_ref().map(|name| name.as_str()), Some("g_1"));
    assert!(result.unmapped.contains(&Unmapped { element: "primitive".into(), id: "a:1".into(), reason: "renamed to a_1".into() }));
    assert!(!result.unmapped.iter().any(|unmapped| unmapped.id == "b"), "valid ids are not reported");
    assert_eq!(result.observed.history[0].resource, "a_1");
}

#[test]
fn location_rules_nest_and_date_rules_are_recorded() {
    let configuration = format!(
        r##"{NODES}<resources><primitive id="r" class="ocf" provider="pacemaker" type="Dummy"/></resources><constraints>
        <rsc_location id="l" rsc="r">
          <rule id="r1" score="50" boolean-op="or"><expression id="e1" attribute="rack" operation="eq" value="r2"/>
            <rule id="r1b"><expression id="e2" attribute="#uname" operation="ne" value="n1"/><expression id="e3" attribute="x" operation="defined"/></rule></rule>
          <rule id="r2" score="-INFINITY"><date_expression id="d" operation="lt" end="2020-01-01"/></rule>
          <rule id="r3" score-attribute="weight"><expression id="e4" attribute="weight" operation="gt" value="0" type="integer"/></rule>
        </rsc_location>
        <rsc_order id="o" first="r" then="r2" score="0"/>
        <rsc_ticket id="t" rsc="r" ticket="T"/></constraints>"##
    );
    let result = imported(&configuration, "");
    let Spec::Location(location) = spec(&result, Kind::Location, "l") else { panic!("location") };
    assert_eq!(location.rules.len(), 2);
    let first = &location.rules[0].expression;
    let alternatives = first.or.as_ref().expect("or");
    assert_eq!(alternatives[0].attribute.as_deref(), Some("rack"));
    let nested = alternatives[1].and.as_ref().expect("nested and");
    assert_eq!(nested[1].operation, Some(ExpressionOperation::Defined));
    assert_eq!(location.rules[1].score_attribute.as_deref(), Some("weight"));
    assert!(has_unmapped(&result, "rule", "date_expression"));
    assert!(has_unmapped(&result, "rsc_ticket", "no Pacer equivalent"));
    assert!(has_unmapped(&result, "rsc_order", "r2 is not an imported resource"));
}

#[test]
fn legacy_order_scores_choose_the_kind() {
    let configuration = format!(
        r#"{NODES}<resources><primitive id="a" class="lsb" type="a"/><primitive id="b" class="lsb" type="b"/></resources><constraints>
        <rsc_order id="optional" first="a" then="b" score="0"/><rsc_order id="mandatory" first="a" then="b" score="INFINITY"/>
        <rsc_order id="serialize" first="a" then="b" kind="Serialize"/></constraints>"#
    );
    let result = imported(&configuration, "");
    let kind = |name: &str| match spec(&result, Kind::Order, name) {
        Spec::Order(order) => order.kind,
        _ => panic!("order"),
    };
    assert_eq!((kind("optional"), kind("mandatory"), kind("serialize")), (OrderKind::Optional, OrderKind::Mandatory, OrderKind::Serialize));
}

#[test]
fn fence_devices_and_topology() {
    let configuration = format!(
        r#"{NODES}<resources>
        <primitive id="f1" class="stonith" type="fence_xvm"><instance_attributes id="f1-i">
          <nvpair id="f1-h" name="pcmk_host_list" value="n1 n2"/><nvpair id="f1-d" name="pcmk_delay_max" value="10s"/>
          <nvpair id="f1-k" name="key_file" value="/etc/key"/></instance_attributes>
          <operations><op id="f1-m" name="monitor" interval="60"/><op id="f1-s" name="start" interval="0" timeout="20"/></operations></primitive>
        <primitive id="f2" class="stonith" type="external/ssh"/></resources>
        <fencing-topology><fencing-level id="l2" target="n1" index="2" devices="f1"/><fencing-level id="l1" target="n1" index="1" devices="f2,f1"/></fencing-topology>"#
    );
    let result = imported(&configuration, "");
    let Spec::FenceDevice(device) = spec(&result, Kind::FenceDevice, "f1") else { panic!("device") };
    assert_eq!(device.host_list.iter().map(|name| name.as_str()).collect::<Vec<_>>(), ["n1", "n2"]);
    assert_eq!(device.delay_max.map(|delay| delay.as_millis()), Some(10_000));
    assert!(device.params.contains_key("key_file"));
    assert_eq!(device.operations.len(), 1);
    let Spec::FenceDevice(legacy) = spec(&result, Kind::FenceDevice, "f2") else { panic!("legacy device") };
    assert_eq!(legacy.agent.as_str(), "external/ssh");
    let Spec::FencingTopology(topology) = spec(&result, Kind::FencingTopology, "n1") else { panic!("topology") };
    assert_eq!(topology.levels.iter().map(|level| level.index).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(topology.levels[0].devices.iter().map(|name| name.as_str()).collect::<Vec<_>>(), ["f2", "f1"]);
}

#[test]
fn histories_sort_by_call_id_with_pending_last() {
    let status = r#"<node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member">
        <transient_attributes id="1"><instance_attributes id="s1"><nvpair id="s1-f" name="fail-count-r#monitor_10000" value="1"/>
          <nvpair id="s1-s" name="shutdown" value="1700000000"/></instance_attributes></transient_attributes>
        <lrm id="1"><lrm_resources><lrm_resource id="r:0" class="ocf" provider="pacemaker" type="Dummy">
          <lrm_rsc_op id="p" operation="stop" call-id="-1" rc-code="14" op-status="-1" interval="0" transition-key="9:3:0:u"/>
          <lrm_rsc_op id="m" operation="monitor" call-id="7" rc-code="1" op-status="4" interval="10000" transition-key="4:2:0:u" last-run="50"/>
          <lrm_rsc_op id="s" operation="start" call-id="5" rc-code="0" op-status="0" interval="0" transition-key="3:2:0:u" last-rc-change="40"/>
          <lrm_rsc_op id="probe" operation="monitor" call-id="2" rc-code="7" op-status="0" interval="0" transition-key="1:1:7:u"/>
        </lrm_resource></lrm_resources></lrm></node_state>"#;
    let result = imported(NODES, status);
    let node = result.observed.nodes.get("n1").expect("n1");
    assert!(node.shutdown);
    assert_eq!(node.liveness, NodeLiveness::Online, "a node shutting down stays online while its controller is");
    assert_eq!(node.attributes.get("fail-count-r#monitor_10000").map(String::as_str), Some("1"));
    assert!(!result.observed.nodes.contains_key("n2"), "a node without node_state is unseen");
    let history = &result.observed.history[0];
    assert_eq!(history.resource, "r:0");
    let calls: Vec<(i64, i32, ExecStatus)> = history.operations.iter().map(|op| (op.call_id, op.expected_rc, op.status)).collect();
    assert_eq!(calls, [(2, 7, ExecStatus::Done), (5, 0, ExecStatus::Done), (7, 0, ExecStatus::Error), (-1, 0, ExecStatus::Pending)]);
    assert_eq!(history.operations[1].last_rc_change, Some(40));
    assert_eq!(history.operations[2].last_rc_change, Some(50), "last-run stands in for last-rc-change");
}

#[test]
fn liveness_tables() {
    let membership = |in_cluster, peer, join, expected| Membership { in_cluster, peer, join, expected };
    let fencing = LivenessContext { stonith_enabled: true, shutdown: false, terminate: None };
    let no_fencing = LivenessContext { stonith_enabled: false, ..fencing };
    let up = membership(Some("true"), Some("online"), Some("member"), Some("member"));
    assert_eq!(liveness(&up, &fencing), NodeLiveness::Online);
    assert_eq!(liveness(&membership(Some("1700000000"), Some("1700000000"), Some("member"), Some("member")), &fencing), NodeLiveness::Online);
    let lost = membership(Some("false"), Some("offline"), Some("member"), Some("member"));
    assert_eq!(liveness(&lost, &fencing), NodeLiveness::Unclean);
    assert_eq!(liveness(&lost, &no_fencing), NodeLiveness::Offline, "without fencing, out of the membership is down");
    let controller_lost = membership(Some("true"), Some("offline"), Some("member"), Some("member"));
    assert_eq!(liveness(&controller_lost, &no_fencing), NodeLiveness::Unclean);
    let left = membership(Some("false"), Some("offline"), Some("down"), Some("down"));
    assert_eq!(liveness(&left, &fencing), NodeLiveness::Offline);
    assert_eq!(liveness(&left, &no_fencing), NodeLiveness::Offline);
    let joining = membership(Some("true"), Some("online"), Some("pending"), Some("member"));
    assert_eq!(liveness(&joining, &fencing), NodeLiveness::Pending);
    assert_eq!(liveness(&joining, &no_fencing), NodeLiveness::Offline);
    let coming_up = membership(Some("true"), Some("online"), Some("member"), None);
    assert_eq!(liveness(&coming_up, &fencing), NodeLiveness::Pending, "expected defaults to down");
    let banned = membership(Some("true"), Some("online"), Some("banned"), Some("member"));
    assert_eq!(liveness(&banned, &fencing), NodeLiveness::Unclean);
    let unknown = membership(None, Some("online"), Some("member"), Some("member"));
    assert_eq!(liveness(&unknown, &fencing), NodeLiveness::Unclean);
    let shot = LivenessContext { terminate: Some("1"), ..fencing };
    assert_eq!(liveness(&membership(Some("false"), Some("offline"), Some("down"), Some("member")), &shot), NodeLiveness::Offline);
    assert_eq!(liveness(&up, &shot), NodeLiveness::Unclean, "termination requested of a running node");
}

#[test]
fn cibsecrets_and_plain_secrets_become_references_to_cibsecrets_files() {
    let resources = r#"<resources>
        <primitive id="fence-ipmi" class="stonith" type="fence_ipmilan"><instance_attributes id="fi-a">
            <nvpair id="fi-ip" name="ip" value="10.0.0.9"/><nvpair id="fi-pw" name="passwd" value="lrm://"/></instance_attributes></primitive>
        <primitive id="db" class="ocf" provider="heartbeat" type="pgsql"><instance_attributes id="db-a">
            <nvpair id="db-pw" name="replication_password" value="hunter2"/></instance_attributes></primitive>
    </resources>"#;
    let imported = imported(&format!("{NODES}{resources}"), "");
    let Spec::FenceDevice(device) = spec(&imported, Kind::FenceDevice, "fence-ipmi") else { panic!("a fence device") };
    assert_eq!(device.params["passwd"], crate::api::Param::SecretFile("/var/lib/pacemaker/lrm/secrets/fence-ipmi/passwd".into()));
    assert_eq!(device.params["ip"], crate::api::Param::from("10.0.0.9"));
    assert!(has_unmapped(&imported, "nvpair", "passwd is a cibsecret (lrm://): read from /var/lib/pacemaker/lrm/secrets/fence-ipmi/passwd"));
    // A plain secret is not copied into the manifests.
    let Spec::Resource(db) = spec(&imported, Kind::Resource, "db") else { panic!("a resource") };
    assert_eq!(db.params["replication_password"], crate::api::Param::SecretFile("/var/lib/pacemaker/lrm/secrets/db/replication_password".into()));
    assert!(has_unmapped(&imported, "nvpair", "replication_password looks like a secret: its value is not copied"));
    assert!(!format!("{:?}{:?}", imported.objects, imported.unmapped).contains("hunter2"));
}

#[test]
fn a_definition_the_import_changed_keeps_no_recorded_agent_or_digest() {
    // "1" cannot be a Pacer parameter, so `a` runs without it: its history's digest
    // (of the parameters with it) and agent say nothing of what Pacer runs. `b` is
    // imported as written and keeps both.
    let configuration = r#"<nodes><node id="1" uname="n1"/></nodes><resources>
        <primitive id="a" class="ocf" provider="heartbeat" type="IPaddr"><instance_attributes id="a-i">
          <nvpair id="a-1" name="1" value="192.0.2.1"/></instance_attributes></primitive>
        <primitive id="b" class="ocf" provider="heartbeat" type="IPaddr"><instance_attributes id="b-i">
          <nvpair id="b-ip" name="ip" value="192.0.2.2"/></instance_attributes></primitive></resources>"#;
    let status = r#"<node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member"><lrm id="1"><lrm_resources>
        <lrm_resource id="a" class="ocf" provider="heartbeat" type="IPaddr">
          <lrm_rsc_op id="a1" operation="start" call-id="3" rc-code="0" op-status="0" interval="0" transition-key="3:2:0:u" op-digest="0123"/></lrm_resource>
        <lrm_resource id="b" class="ocf" provider="heartbeat" type="IPaddr">
          <lrm_rsc_op id="b1" operation="start" call-id="4" rc-code="0" op-status="0" interval="0" transition-key="4:2:0:u" op-digest="4567"/></lrm_resource>
        </lrm_resources></lrm></node_state>"#;
    let result = imported(configuration, status);
    let history = |name: &str| result.observed.history.iter().find(|history| history.resource == name).expect("history");
    assert_eq!((history("a").agent.as_deref(), history("a").operations[0].digest.as_deref()), (None, None));
    assert_eq!((history("b").agent.as_deref(), history("b").operations[0].digest.as_deref()), (Some("ocf:heartbeat:IPaddr"), Some("4567")));
}
