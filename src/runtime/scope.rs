//! What a cache keeps when it follows one resource rather than the cluster
//! (`pacer wait`): the resource's family (itself, the group it is in, the group's
//! members) among the resources, that family's statuses, and everything else the
//! snapshot builder reads (nodes, groups, policy, fence devices, constraints,
//! heartbeats, fencing). The other resources' objects and statuses — almost all of a
//! large cluster's keys — are not decoded at all (issue 18: at 10,000 resources a
//! `pacer wait` decoded both of each of them, 0.3 s of CPU before its first look, and
//! again took in every status the agents wrote while it waited); of those statuses the
//! cache keeps only the node each names, so that a node known only by them is known
//! to the snapshot still (as a node seen, down: `ClusterCache::reports`).
//!
//! Why that is enough: where a primitive runs now (`scheduler::current_placements`)
//! is read from its own objects and statuses, its group, the nodes and the cluster's
//! settings. Every group is kept, so a follower can check that the family it followed
//! is the family its listing shows (`pacer wait` starts again when a change came
//! between). Tests: this module's (a scoped cache and a whole one fed the same keys
//! place a family alike: groups, cloned groups, clone instances, a node known only by
//! another resource's status) and tests/scheduler_properties.rs (random clusters of
//! primitives and clones, cut to each family).

use std::collections::BTreeSet;

use crate::api::names::split_instance;
use crate::api::{Kind, Object, ObjectKey, Spec};

/// The family of one resource name, and so what a scoped cache keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Names of the Resources, Groups and FenceDevices of the family.
    family: BTreeSet<String>,
}

impl Scope {
    /// The family of `name` as `objects` define it: the object named `name`; when it
    /// is a group, its members; every group listing it as a member, and that group's
    /// members (a member's placements depend on its group's settings). Only groups
    /// are read: the caller may pass every group and nothing else.
    pub fn of(objects: &[Object], name: &str) -> Scope {
        let mut family = BTreeSet::from([name.to_string()]);
        for object in objects {
            if let Spec::Group(group) = &object.spec {
                let group_name = object.name().as_str();
                if group_name == name || group.members.iter().any(|member| member.as_str() == name) {
                    family.insert(group_name.to_string());
                    family.extend(group.members.iter().map(ToString::to_string));
                }
            }
        }
        Scope { family }
    }

    /// Whether a scoped cache keeps the object: every object but the Resources
    /// outside the family (groups and fence devices are few; a group whose members
    /// are not held is an empty group to the scheduler, which places nothing of it).
    pub fn keeps_object(&self, key: &ObjectKey) -> bool {
        key.kind != Kind::Resource || self.family.contains(key.name.as_str())
    }

    /// Whether a scoped cache keeps the status of the resource instance `id`.
    pub fn keeps_status(&self, id: &str) -> bool {
        self.family.contains(split_instance(id).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Name;
    use crate::runtime::{BuildOptions, ClusterCache, build};
    use crate::scheduler::current_placements;
    use crate::store::watch::{Entry, WatchEvent};
    use crate::store::{Keys, Store};

    /// A listing of a cluster: nodes n1–n3 (n3 without a heartbeat), a group `web`
    /// (ip, site) on n1, a cloned group `stack` (disk, fs) without `max`, a clone
    /// `db` without `max` whose instances run on n1 and n2, a plain `solo`, and
    /// `other`, reported running on n4 — a node known only by that status.
    fn listing(keys: &Keys) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut revision = 1;
        let mut put = |key: String, value: String| {
            revision += 1;
            entries.push(Entry { key, value: value.into_bytes(), mod_revision: revision, create_revision: revision, lease: 0 });
        };
        let objects = [
            "kind: Node\nmetadata: {name: n1}",
            "kind: Node\nmetadata: {name: n2}",
            "kind: Node\nmetadata: {name: n3}",
            "kind: Group\nmetadata: {name: web}\nspec: {members: [ip, site]}",
            "kind: Group\nmetadata: {name: stack}\nspec: {members: [disk, fs], clone: {}}",
            "kind: Resource\nmetadata: {name: db}\nspec: {agent: ocf:heartbeat:Dummy, clone: {}}",
        ];
        let primitives = ["ip", "site", "disk", "fs", "solo", "other"];
        for yaml in objects
            .into_iter()
            .map(str::to_string)
            .chain(primitives.iter().map(|name| format!("kind: Resource\nmetadata: {{name: {name}}}\nspec: {{agent: ocf:heartbeat:Dummy}}")))
        {
            let object = object(&format!("apiVersion: pacer.io/v1alpha1\n{yaml}"));
            put(keys.object(&object.key()), Store::encode_object(&object));
        }
        for node in ["n1", "n2"] {
            put(keys.node_lease(node), format!(r#"{{"node":"{node}","pid":1,"host":"h","started":0,"leaseTtlMs":5000,"probed":true}}"#));
        }
        let running = [
            ("ip", "web", "n1"),
            ("site", "web", "n1"),
            ("disk:0", "stack", "n2"),
            ("fs:0", "stack", "n2"),
            ("db:0", "", "n1"),
            ("db:1", "", "n2"),
            ("solo", "", "n2"),
            ("other", "", "n4"),
        ];
        for (call_id, (id, group, node)) in running.into_iter().enumerate() {
            let name = id.split(':').next().unwrap_or(id);
            let group = if group.is_empty() { String::new() } else { format!(r#""group":"{group}","#) };
            let clone = match name {
                "db" => r#""clone":"db","#,
                "disk" | "fs" => r#""clone":"stack","#,
                _ => "",
            };
            put(
                keys.status(node, id),
                format!(
                    r#"{{"id":"{id}","name":"{name}",{group}{clone}"node":"{node}","role":"Started","definition":{{"agent":"ocf:heartbeat:Dummy"}},"history":[{{"operation":"start","intervalMs":0,"callId":{call_id},"rc":0,"expectedRc":0,"status":"Done","lastRcChange":100}}],"failures":0}}"#
                ),
            );
        }
        entries
    }

    #[test]
    fn a_scoped_cache_places_its_family_as_a_whole_one() {
        let keys = Keys::new("/pacer");
        let listed = WatchEvent::Restarted { prefix: "/pacer/".into(), revision: 100, entries: listing(&keys) };
        let mut whole = ClusterCache::new(keys.clone());
        whole.apply_event(&listed);
        let options = BuildOptions { now: 1000, hold_unseen: false };
        let whole = build(&whole, options).expect("whole snapshot").snapshot;
        assert!(whole.observed.nodes.contains_key("n4"));
        let everywhere = current_placements(&whole);
        for name in ["ip", "site", "web", "disk", "stack", "db", "solo", "other"] {
            let scope = Scope::of(&whole.objects, name);
            let mut scoped = ClusterCache::scoped(keys.clone(), scope.clone());
            scoped.apply_event(&listed);
            let cut = build(&scoped, options).expect("scoped snapshot").snapshot;
            assert!(cut.objects.len() < whole.objects.len(), "{name}: the other resources are left out");
            assert_eq!(Scope::of(&cut.objects, name), scope, "{name}: the family is read again from the cut");
            assert_eq!(cut.observed.nodes.keys().collect::<Vec<_>>(), whole.observed.nodes.keys().collect::<Vec<_>>(), "{name}: every node is known");
            let family = |placements: &[(String, Vec<crate::scheduler::plan::Placement>)]| -> Vec<(String, Vec<crate::scheduler::plan::Placement>)> {
                placements.iter().filter(|(primitive, _)| scope.keeps_status(primitive)).cloned().collect()
            };
            let expected = family(&everywhere);
            assert!(expected.iter().any(|(_, placements)| !placements.is_empty()), "{name}: runs somewhere: {everywhere:?}");
            assert_eq!(family(&current_placements(&cut)), expected, "{name}");
        }
        // A status deleted is forgotten, node and all, when nothing else knows it.
        let mut scoped = ClusterCache::scoped(keys.clone(), Scope::of(&whole.objects, "solo"));
        scoped.apply_event(&listed);
        scoped.apply_event(&WatchEvent::Deleted { key: keys.status("n4", "other"), revision: 101 });
        assert!(!build(&scoped, options).expect("scoped snapshot").snapshot.observed.nodes.contains_key("n4"));
    }

    fn object(yaml: &str) -> Object {
        let value: serde_json::Value = serde_yaml::from_str(yaml).expect("test yaml");
        Object::from_value(value).expect("test object")
    }

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey { kind, name: Name::from(name) }
    }

    #[test]
    fn a_family_is_the_resource_its_group_and_the_groups_members() {
        let objects = vec![
            object("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: web}\nspec: {members: [ip, site]}"),
            object("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: db}\nspec: {members: [disk, pg]}"),
        ];
        let member = Scope::of(&objects, "ip");
        for name in ["ip", "site", "web"] {
            assert!(member.keeps_object(&key(Kind::Resource, name)), "{name}");
        }
        assert!(member.keeps_object(&key(Kind::Group, "web")));
        assert!(member.keeps_object(&key(Kind::Group, "db")), "every group is kept");
        assert!(!member.keeps_object(&key(Kind::Resource, "pg")));
        assert!(member.keeps_object(&key(Kind::Node, "n1")));
        assert!(member.keeps_object(&key(Kind::Location, "pg-on-n1")));
        assert!(member.keeps_status("site") && member.keeps_status("site:2"));
        assert!(!member.keeps_status("pg") && !member.keeps_status("sites"));

        let group = Scope::of(&objects, "db");
        assert!(group.keeps_object(&key(Kind::Resource, "pg")) && group.keeps_status("disk:0"));
        assert!(!group.keeps_object(&key(Kind::Resource, "ip")));

        let alone = Scope::of(&objects, "other");
        assert!(alone.keeps_status("other") && !alone.keeps_status("ip"));
    }
}
