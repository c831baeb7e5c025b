//! What a cache keeps when it follows one resource rather than the cluster
//! (`pacer wait`): the resource's family (itself, the group it is in, the group's
//! members) among the resources and groups, that family's statuses, and everything
//! else the snapshot builder reads (nodes, policy, fence devices, constraints,
//! heartbeats, fencing). The other resources' objects and statuses — almost all of a
//! large cluster's keys — are not decoded at all (issue 18: at 10,000 resources a
//! `pacer wait` decoded both of each of them, 0.3 s of CPU before its first look, and
//! again took in every status the agents wrote while it waited).
//!
//! Why that is enough: where a primitive runs now (`scheduler::current_placements`)
//! is read from its own objects and statuses, the nodes and the cluster's settings;
//! `tests/scheduler_properties.rs` checks that a snapshot cut to a family gives that
//! family's placements exactly as the whole one does.

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

    /// Whether a scoped cache keeps the object: every object but the Resources and
    /// Groups outside the family (fence devices are few, and whether any exists is
    /// read by the scheduler).
    pub fn keeps_object(&self, key: &ObjectKey) -> bool {
        !matches!(key.kind, Kind::Resource | Kind::Group) || self.family.contains(key.name.as_str())
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
        assert!(!member.keeps_object(&key(Kind::Group, "db")));
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
