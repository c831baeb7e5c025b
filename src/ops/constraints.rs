//! The constraints `pacer move` and `pacer ban` make, and what the cluster does with
//! them (pure: no IO, no clock — `now` comes with the snapshot).
//!
//! They are ordinary `Location` objects (one resource, one node, a score, maybe a role
//! and an expiry) marked by annotations: `pacer.io/owner` names the verb, so only they
//! are shown apart, cleared by `pacer clear` and removed by the leader — a Location a
//! user wrote is never touched. Names follow Pacemaker's `crm_resource`:
//! `cli-prefer-<rsc>` (move to a node, +INFINITY) and `cli-ban-<rsc>-on-<node>`
//! (-INFINITY).
//!
//! `review` says, for each, what the cluster should do: an expired one is deleted; a
//! move without `--keep` is deleted as soon as the resource runs where asked, but only
//! if a schedule without it would leave the resource there (otherwise, with no
//! stickiness, it would move straight back: the constraint is kept, and `pacer status`
//! says why).

use std::collections::BTreeMap;

use crate::api::constraint::LocationSpec;
use crate::api::resource::Role;
use crate::api::{Name, Object, ObjectMeta, Score, Spec, Timestamp};
use crate::scheduler::plan::{Placement, Plan, ResourcePlan};
use crate::scheduler::schedule;
use crate::scheduler::snapshot::Snapshot;
use crate::state::view::ConstraintView;

use super::edit::annotations::{CREATED_BY, OWNER};

/// Annotation of a `move --keep` constraint: the cluster leaves it in place once the
/// resource has moved.
pub const KEEP: &str = "pacer.io/keep";

/// The verb that made a constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Move,
    Ban,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Move => "move",
            Owner::Ban => "ban",
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        match text {
            "move" => Some(Owner::Move),
            "ban" => Some(Owner::Ban),
            _ => None,
        }
    }
}

/// A Location made by a verb, read back from its object.
#[derive(Clone, Debug, PartialEq)]
pub struct VerbConstraint {
    pub name: Name,
    pub owner: Owner,
    pub resource: String,
    pub node: String,
    /// +INFINITY: run there (`cli-prefer`); -INFINITY: never there (`cli-ban`).
    pub score: Score,
    /// `Promoted` for `--promoted`: the constraint is about the promoted role only.
    pub role: Option<Role>,
    pub expires: Option<Timestamp>,
    /// `move --keep`: stays once the resource has moved.
    pub keep: bool,
    /// Who ran the verb (`user@host`).
    pub created_by: Option<String>,
    /// RFC 3339, from the object's metadata.
    pub created: Option<String>,
    /// The object's mod revision as read (its `resourceVersion`; 0 when unknown).
    pub revision: i64,
}

impl VerbConstraint {
    /// The constraint `object` is, if a verb made it: a Location with the owner
    /// annotation and the shape the verbs write (one resource, one node, a score).
    pub fn of(object: &Object) -> Option<VerbConstraint> {
        let Spec::Location(spec) = &object.spec else { return None };
        let owner = Owner::parse(object.metadata.annotations.get(OWNER)?)?;
        let (Some(resource), Some(node), Some(score), true) = (&spec.resource, &spec.node, spec.score, spec.resources.is_empty() && spec.rules.is_empty())
        else {
            return None;
        };
        Some(VerbConstraint {
            name: object.name().clone(),
            owner,
            resource: resource.as_str().to_string(),
            node: node.as_str().to_string(),
            score,
            role: spec.role,
            expires: spec.expires,
            keep: object.metadata.annotations.get(KEEP).is_some_and(|value| value == "true"),
            created_by: object.metadata.annotations.get(CREATED_BY).cloned(),
            created: object.metadata.creation_timestamp.clone(),
            revision: object.metadata.resource_version.as_deref().and_then(|version| version.parse().ok()).unwrap_or(0),
        })
    }

    /// What it asks of its resource.
    pub fn wish(&self) -> Wish {
        Wish { resource: self.resource.clone(), node: self.node.clone(), prefer: self.score > Score::ZERO, promoted: self.role == Some(Role::Promoted) }
    }

    pub fn expired_at(&self, now: i64) -> bool {
        self.expires.is_some_and(|expires| expires.epoch_secs() <= now)
    }
}

/// Every verb-made constraint among `objects`, in their order.
pub fn verb_constraints(objects: &[Object]) -> Vec<VerbConstraint> {
    objects.iter().filter_map(VerbConstraint::of).collect()
}

/// `cli-prefer-<rsc>`, the name of a move's constraint (Pacemaker's).
pub fn prefer_name(resource: &str) -> String {
    format!("cli-prefer-{resource}")
}

/// `cli-ban-<rsc>-on-<node>`, the name of a ban's (or a move away's) constraint.
pub fn ban_name(resource: &str, node: &str) -> String {
    format!("cli-ban-{resource}-on-{node}")
}

/// What a verb writes: the Location of `constraint` (its name, owner, resource, node,
/// score, role, expiry, keep), annotated with who made it.
pub fn location_object(constraint: &VerbConstraint) -> Object {
    let mut annotations = BTreeMap::new();
    annotations.insert(OWNER.to_string(), constraint.owner.as_str().to_string());
    if let Some(by) = &constraint.created_by {
        annotations.insert(CREATED_BY.to_string(), by.clone());
    }
    if constraint.keep {
        annotations.insert(KEEP.to_string(), "true".to_string());
    }
    let spec = LocationSpec {
        resource: Some(Name(constraint.resource.clone())),
        resources: Vec::new(),
        role: constraint.role,
        node: Some(Name(constraint.node.clone())),
        score: Some(constraint.score),
        rules: Vec::new(),
        resource_discovery: None,
        expires: constraint.expires,
    };
    Object { metadata: ObjectMeta { name: constraint.name.clone(), annotations, ..ObjectMeta::default() }, spec: Spec::Location(spec) }
}

/// Where a constraint wants its resource: on `node` (`prefer`) or anywhere but
/// `node`; for `promoted`, only the promoted instance of a promotable clone counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wish {
    pub resource: String,
    pub node: String,
    pub prefer: bool,
    pub promoted: bool,
}

impl Wish {
    /// The plan's entries for the resource: the primitive, a group's members, a clone's
    /// instances.
    pub fn entries<'a>(&self, plan: &'a Plan) -> Vec<&'a ResourcePlan> {
        plan.resources
            .iter()
            .filter(|entry| {
                entry.name == self.resource || entry.group.as_deref() == Some(self.resource.as_str()) || entry.clone.as_deref() == Some(self.resource.as_str())
            })
            .collect()
    }

    /// Whether the placements `placements_of` gives (each entry's `current` for where it
    /// runs now, `next` for where the plan puts it) are what was asked: every member on
    /// `node` and only there (prefer), or running, none on `node` (avoid); with
    /// `promoted`, the promoted copy on `node`, or promoted elsewhere and not on `node`.
    pub fn holds(&self, plan: &Plan, placements_of: impl Fn(&ResourcePlan) -> &[Placement]) -> bool {
        let entries = self.entries(plan);
        if entries.is_empty() {
            return false;
        }
        let active = |entry: &ResourcePlan| -> Vec<Placement> {
            placements_of(entry).iter().filter(|placement| placement.role != Role::Stopped).cloned().collect::<Vec<_>>()
        };
        if self.promoted {
            let promoted: Vec<String> =
                entries.iter().flat_map(|entry| active(entry)).filter(|placement| placement.role == Role::Promoted).map(|placement| placement.node).collect();
            return if self.prefer { promoted.contains(&self.node) } else { !promoted.is_empty() && !promoted.contains(&self.node) };
        }
        entries.iter().all(|entry| {
            let placements = active(entry);
            if self.prefer {
                !placements.is_empty() && placements.iter().all(|placement| placement.node == self.node)
            } else {
                !placements.is_empty() && placements.iter().all(|placement| placement.node != self.node)
            }
        })
    }

    /// Whether the resource runs where asked now.
    pub fn holds_now(&self, plan: &Plan) -> bool {
        self.holds(plan, |entry| &entry.current)
    }

    /// Whether it runs where asked once `plan` has run.
    pub fn holds_next(&self, plan: &Plan) -> bool {
        self.holds(plan, |entry| &entry.next)
    }

    /// Where the plan puts the resource (its active placements once the plan has run,
    /// the promoted ones for `promoted`), as `node` or `node (Role)`, sorted.
    pub fn destination(&self, plan: &Plan) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .entries(plan)
            .iter()
            .flat_map(|entry| entry.next.iter())
            .filter(|placement| if self.promoted { placement.role == Role::Promoted } else { placement.role != Role::Stopped })
            .map(|placement| placement.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

/// What the cluster does with a verb-made constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still in force: a ban, a `move --keep`, or a move not done yet.
    InForce,
    /// Its expiry has passed: the scheduler ignores it and the leader deletes it.
    Expired,
    /// A move done: the resource runs where asked and would stay there without it;
    /// the leader deletes it.
    Done,
    /// A move done, kept because without it the resource would move again (the
    /// sentence says where, and what would keep it).
    Kept(String),
}

impl Verdict {
    /// Whether the leader deletes the constraint.
    pub fn removable(&self) -> bool {
        matches!(self, Verdict::Expired | Verdict::Done)
    }
}

/// Each verb-made constraint of the snapshot with what the cluster does with it.
/// `plan` is `schedule(snapshot)`. A move that runs where asked costs one more
/// schedule (without it), so a cluster without such a move pays nothing.
pub fn review(snapshot: &Snapshot, plan: &Plan) -> Vec<(VerbConstraint, Verdict)> {
    review_remembering(snapshot, plan, None)
}

/// How long a `Kept` verdict is reused for the same constraint and spec.
const KEPT_FOR_SECS: i64 = 60;

/// `Kept` verdicts the leader has reached, so a kept move (a resource without
/// stickiness) does not cost a second `schedule` on every turn: reused while the
/// constraint and the spec are the same, for at most `KEPT_FOR_SECS` (what else the
/// cluster observes may change the answer). Only `Kept` is remembered: reusing it
/// late keeps a constraint a little longer, never removes one early.
#[derive(Debug, Default)]
pub struct KeptMemo {
    /// (constraint name, its revision) → (spec version, when reached, the verdict's sentence).
    entries: std::collections::HashMap<(String, i64), (i64, i64, String)>,
}

/// `review` for the leader, reusing the `Kept` verdicts `memo` holds for
/// `spec_version` (the revision of the spec the snapshot holds).
pub fn review_remembered(snapshot: &Snapshot, plan: &Plan, spec_version: i64, memo: &mut KeptMemo) -> Vec<(VerbConstraint, Verdict)> {
    review_remembering(snapshot, plan, Some((spec_version, memo)))
}

fn review_remembering(snapshot: &Snapshot, plan: &Plan, mut memo: Option<(i64, &mut KeptMemo)>) -> Vec<(VerbConstraint, Verdict)> {
    let constraints = verb_constraints(&snapshot.objects);
    if let Some((_, memo)) = memo.as_mut() {
        memo.entries.retain(|(name, revision), _| constraints.iter().any(|constraint| constraint.name.as_str() == name && constraint.revision == *revision));
    }
    constraints
        .into_iter()
        .map(|constraint| {
            let key = (constraint.name.to_string(), constraint.revision);
            let remembered = memo.as_ref().and_then(|(spec_version, memo)| {
                memo.entries.get(&key).filter(|(at_spec, at, _)| at_spec == spec_version && snapshot.now - at < KEPT_FOR_SECS).map(|(_, _, why)| why.clone())
            });
            // Still holding where asked (else it is in force again): kept as before.
            if let Some(why) = remembered
                && !constraint.expired_at(snapshot.now)
                && constraint.wish().holds_now(plan)
            {
                return (constraint, Verdict::Kept(why));
            }
            let verdict = verdict(snapshot, plan, &constraint);
            if let (Verdict::Kept(why), Some((spec_version, memo))) = (&verdict, memo.as_mut()) {
                memo.entries.insert(key, (*spec_version, snapshot.now, why.clone()));
            }
            (constraint, verdict)
        })
        .collect()
}

fn verdict(snapshot: &Snapshot, plan: &Plan, constraint: &VerbConstraint) -> Verdict {
    if constraint.expired_at(snapshot.now) {
        return Verdict::Expired;
    }
    let wish = constraint.wish();
    if constraint.owner != Owner::Move || constraint.keep || !wish.holds_now(plan) {
        return Verdict::InForce;
    }
    let mut without = snapshot.clone();
    without.objects.retain(|object| !(object.kind() == crate::api::Kind::Location && object.name() == &constraint.name));
    let plan_without = schedule(&without);
    if wish.holds_next(&plan_without) {
        return Verdict::Done;
    }
    let elsewhere = wish.destination(&plan_without);
    let subject = if wish.promoted { format!("{} (promoted)", wish.resource) } else { wish.resource.clone() };
    let whither = if elsewhere.is_empty() { "stop".to_string() } else { format!("move to {}", elsewhere.join(", ")) };
    Verdict::Kept(format!("{subject} would {whither} without it; set resourceStickiness (or ClusterPolicy defaultResourceStickiness) to keep it where it is"))
}

/// What `pacer status` shows of them: `review` as views.
pub fn constraint_views(snapshot: &Snapshot, plan: &Plan) -> Vec<ConstraintView> {
    review(snapshot, plan)
        .into_iter()
        .map(|(constraint, verdict)| {
            let (state, note) = match verdict {
                Verdict::InForce => ("in_force", None),
                Verdict::Expired => ("expired", None),
                Verdict::Done => ("done", None),
                Verdict::Kept(why) => ("kept", Some(why)),
            };
            ConstraintView {
                name: constraint.name.0,
                owner: constraint.owner.as_str().to_string(),
                resource: constraint.resource,
                node: constraint.node,
                role: constraint.role.map(|role| role.as_str().to_string()),
                score: constraint.score.to_string(),
                created_by: constraint.created_by,
                created: constraint.created,
                expires: constraint.expires.map(|expires| expires.to_string()),
                keep: constraint.keep,
                state,
                note,
            }
        })
        .collect()
}

/// The earliest expiry of any Location still in force at `now` (a user's as much as
/// a verb's: both change the decision when they lapse), for the leader's wake-up.
pub fn next_expiry(objects: &[Object], now: i64) -> Option<i64> {
    objects
        .iter()
        .filter_map(|object| match &object.spec {
            Spec::Location(spec) => spec.expires.map(Timestamp::epoch_secs).filter(|expires| *expires > now),
            _ => None,
        })
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};
    use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode};

    const NODES: [&str; 3] = ["n1", "n2", "n3"];

    /// A cluster of three online nodes (`n1`..`n3`) without fencing, `objects` (YAML
    /// documents, each starting with `---`), and `running` (resource, node) started.
    pub(crate) fn snapshot(objects: &str, running: &[(&str, &str)], now: i64) -> Snapshot {
        let mut text = String::from("apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n");
        for node in NODES {
            text.push_str(&format!("---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\n"));
        }
        text.push_str(objects);
        let loaded = load(&[Source { name: "test.yaml".into(), text }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let mut history = String::from(if running.is_empty() { "history: []\n" } else { "history:\n" });
        for (resource, node) in running {
            history.push_str(&format!(
                "  - {{resource: {resource}, node: {node}, operations: [{{operation: start, callId: 1, rc: 0, expectedRc: 0, status: Done}}]}}\n"
            ));
        }
        let value = crate::api::yaml::parse_documents(&history).expect("yaml").remove(0).value;
        let mut observed: Observed = serde_json::from_value(value).expect("observed");
        observed.quorum = true;
        for node in NODES {
            observed.nodes.insert(node.to_string(), ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() });
        }
        Snapshot { objects: loaded.manifests.into_iter().map(|manifest| manifest.object).collect(), observed, now }
    }

    fn web(stickiness: u32) -> String {
        format!(
            "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec: {{agent: 'ocf:heartbeat:Dummy', meta: {{resourceStickiness: {stickiness}}}}}\n"
        )
    }

    fn verb_location(name: &str, owner: &str, node: &str, score: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: {name}, annotations: {{pacer.io/owner: {owner}{extra}}}}}\nspec: {{resource: web, node: {node}, score: {score}}}\n"
        )
    }

    fn verdicts(snapshot: &Snapshot) -> Vec<(String, Verdict)> {
        review(snapshot, &schedule(snapshot)).into_iter().map(|(constraint, verdict)| (constraint.name.0, verdict)).collect()
    }

    #[test]
    fn the_leader_reuses_a_kept_verdict_for_the_same_spec_for_a_while() {
        // Without stickiness web prefers n1 (a user's +10) and would go back; with it, it stays.
        let likes = "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: web-likes-n1}\nspec: {resource: web, node: n1, score: 10}\n";
        let kept = format!("{}{likes}{}", web(0), verb_location("cli-prefer-web", "move", "n2", "INFINITY", ""));
        let sticky = format!("{}{likes}{}", web(100), verb_location("cli-prefer-web", "move", "n2", "INFINITY", ""));
        let remembered = |objects: &str, spec_version: i64, now: i64, memo: &mut KeptMemo| {
            let snapshot = snapshot(objects, &[("web", "n2")], now);
            review_remembered(&snapshot, &schedule(&snapshot), spec_version, memo).into_iter().map(|(_, verdict)| verdict).collect::<Vec<_>>()
        };
        let mut memo = KeptMemo::default();
        assert!(matches!(remembered(&kept, 7, 0, &mut memo)[..], [Verdict::Kept(_)]));
        // Same constraint, same spec version: the verdict is reused, not recomputed
        // (this snapshot would be Done, which shows it was not looked at again).
        assert!(matches!(remembered(&sticky, 7, 30, &mut memo)[..], [Verdict::Kept(_)]));
        // A new spec version, or the memory's age: computed again.
        assert_eq!(remembered(&sticky, 8, 30, &mut memo), [Verdict::Done]);
        let mut memo = KeptMemo::default();
        remembered(&kept, 7, 0, &mut memo);
        assert_eq!(remembered(&sticky, 7, KEPT_FOR_SECS, &mut memo), [Verdict::Done]);
        // Not where asked any more: in force, whatever was remembered.
        let mut memo = KeptMemo::default();
        remembered(&kept, 7, 0, &mut memo);
        let elsewhere = snapshot(&kept, &[("web", "n1")], 1);
        let verdicts: Vec<Verdict> = review_remembered(&elsewhere, &schedule(&elsewhere), 7, &mut memo).into_iter().map(|(_, verdict)| verdict).collect();
        assert_eq!(verdicts, [Verdict::InForce]);
    }

    #[test]
    fn a_user_location_is_never_a_verb_constraint() {
        let user = "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: cli-prefer-web}\nspec: {resource: web, node: n2, score: INFINITY}\n";
        let snapshot = snapshot(&format!("{}{user}", web(0)), &[("web", "n2")], 0);
        assert_eq!(verdicts(&snapshot), []);
    }

    #[test]
    fn a_move_is_done_once_the_resource_runs_there_and_would_stay() {
        let objects = format!("{}{}", web(100), verb_location("cli-prefer-web", "move", "n2", "INFINITY", ""));
        // Not there yet: in force.
        assert_eq!(verdicts(&snapshot(&objects, &[("web", "n1")], 0)), [("cli-prefer-web".into(), Verdict::InForce)]);
        // There, and stickiness keeps it there without the constraint: done.
        assert_eq!(verdicts(&snapshot(&objects, &[("web", "n2")], 0)), [("cli-prefer-web".into(), Verdict::Done)]);
    }

    #[test]
    fn a_move_that_would_be_undone_without_its_constraint_is_kept_and_says_why() {
        // Without stickiness, web prefers n1 (a user's +10) and would go back.
        let likes = "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: web-likes-n1}\nspec: {resource: web, node: n1, score: 10}\n";
        let objects = format!("{}{likes}{}", web(0), verb_location("cli-prefer-web", "move", "n2", "INFINITY", ""));
        let [(name, Verdict::Kept(why))] = &verdicts(&snapshot(&objects, &[("web", "n2")], 0))[..] else { panic!("not kept") };
        assert_eq!(name, "cli-prefer-web");
        assert!(why.starts_with("web would move to n1 without it; set resourceStickiness"), "{why}");
        // With --keep it is simply in force.
        let kept = format!("{}{likes}{}", web(0), verb_location("cli-prefer-web", "move", "n2", "INFINITY", ", pacer.io/keep: 'true'"));
        assert_eq!(verdicts(&snapshot(&kept, &[("web", "n2")], 0)), [("cli-prefer-web".into(), Verdict::InForce)]);
    }

    #[test]
    fn a_move_away_is_done_when_it_runs_elsewhere_and_a_ban_stays_until_it_expires() {
        let objects = format!(
            "{}{}{}",
            web(100),
            verb_location("cli-ban-web-on-n1", "move", "n1", "-INFINITY", ""),
            verb_location("cli-ban-web-on-n3", "ban", "n3", "-INFINITY", "").replace("score: -INFINITY}", "score: -INFINITY, expires: '1970-01-01T00:01:40Z'}")
        );
        assert_eq!(
            verdicts(&snapshot(&objects, &[("web", "n2")], 99)),
            [("cli-ban-web-on-n1".into(), Verdict::Done), ("cli-ban-web-on-n3".into(), Verdict::InForce)]
        );
        assert_eq!(
            verdicts(&snapshot(&objects, &[("web", "n1")], 100)),
            [("cli-ban-web-on-n1".into(), Verdict::InForce), ("cli-ban-web-on-n3".into(), Verdict::Expired)]
        );
        assert_eq!(next_expiry(&snapshot(&objects, &[], 0).objects, 99), Some(100));
        assert_eq!(next_expiry(&snapshot(&objects, &[], 0).objects, 100), None);
    }

    #[test]
    fn location_objects_read_back_as_the_constraint_they_were_made_from() {
        let constraint = VerbConstraint {
            name: Name(ban_name("web", "n1")),
            owner: Owner::Ban,
            resource: "web".into(),
            node: "n1".into(),
            score: Score::NEG_INFINITY,
            role: Some(Role::Promoted),
            expires: Some(Timestamp::from_epoch_secs(100)),
            keep: false,
            created_by: Some("root@host".into()),
            created: None,
            revision: 0,
        };
        assert_eq!(VerbConstraint::of(&location_object(&constraint)), Some(constraint));
        assert_eq!(prefer_name("web"), "cli-prefer-web");
        assert_eq!(ban_name("web", "n1"), "cli-ban-web-on-n1");
    }
}
