//! `Locals`: this node's resources as its agent knows them (`Local` by id), with the
//! sets a decision and a write walk, kept as entries change.
//!
//! A node knows every configured resource: at ten thousand resources, a node running
//! ten of them holds ten thousand entries, nearly all probed, stopped and idle. A
//! decision, a write and a wake-up that walk every entry after every operation cost
//! the node R² over a burst (issue 18: 20 hollow nodes took 700 s to probe 10,000
//! resources each, 29 CPU seconds per node). So the entries are reached only through
//! methods that keep, by id:
//! - `unknown`: not probed yet (role `Unknown`);
//! - `awake`: everything but an idle stopped entry (`is_quiet`), the only entries a
//!   decision without an assignment for them can act on;
//! - `awake_known`: the awake ones probed (a monitor may be due, a notice awaited),
//!   so a node probing ten thousand resources does not walk them all for monitors;
//! - `dirty`: a status changed since it was written;
//! - `busy`: an operation runs.
//!
//! Invariant: each set holds exactly the ids whose entry has its property
//! (`sets_follow_every_change`). A change goes through `get_mut`'s guard, which
//! re-reads the entry when dropped, or `for_each_mut`; `insert` and `remove` place and
//! drop the id.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Deref, DerefMut};

use crate::api::records::ObservedRole;

use super::reconcile::Local;

/// The sets kept beside the entries.
#[derive(Debug, Default)]
struct Sets {
    unknown: BTreeSet<String>,
    awake: BTreeSet<String>,
    awake_known: BTreeSet<String>,
    dirty: BTreeSet<String>,
    busy: BTreeSet<String>,
}

impl Sets {
    fn follow(&mut self, id: &str, local: &Local) {
        place(&mut self.unknown, id, local.status.role == ObservedRole::Unknown);
        place(&mut self.awake, id, !is_quiet(local));
        place(&mut self.awake_known, id, !is_quiet(local) && local.status.role != ObservedRole::Unknown);
        place(&mut self.dirty, id, local.dirty);
        place(&mut self.busy, id, local.busy.is_some());
    }

    fn drop_id(&mut self, id: &str) {
        self.unknown.remove(id);
        self.awake.remove(id);
        self.awake_known.remove(id);
        self.dirty.remove(id);
        self.busy.remove(id);
    }
}

fn place(set: &mut BTreeSet<String>, id: &str, member: bool) {
    if member {
        if !set.contains(id) {
            set.insert(id.to_string());
        }
    } else {
        set.remove(id);
    }
}

/// An entry no decision acts on unless the node's assignment names it: known stopped,
/// nothing running, no operation recorded as pending, no notice published or awaited,
/// no monitor scheduled. (Such an entry, unassigned, converges to nothing, has no
/// monitor due and is never notified: only active instances are.)
pub fn is_quiet(local: &Local) -> bool {
    local.status.role == ObservedRole::Stopped
        && local.busy.is_none()
        && local.status.pending.is_none()
        && local.status.notice.is_none()
        && local.notice_since.is_none()
        && local.monitors.is_empty()
}

/// This node's entries by id, with their sets. Boxed: a map's nodes hold room for
/// eleven entries and are often half full, and an entry is about 700 bytes — the map
/// itself was a fifth of a hollow node's memory at 10,000 resources (issue 18).
#[derive(Debug, Default)]
pub struct Locals {
    map: BTreeMap<String, Box<Local>>,
    sets: Sets,
}

/// A changeable entry: its id's sets follow it when the guard is dropped.
pub struct LocalMut<'a> {
    id: &'a str,
    local: &'a mut Local,
    sets: &'a mut Sets,
}

impl Deref for LocalMut<'_> {
    type Target = Local;
    fn deref(&self) -> &Local {
        self.local
    }
}

impl DerefMut for LocalMut<'_> {
    fn deref_mut(&mut self) -> &mut Local {
        self.local
    }
}

impl Drop for LocalMut<'_> {
    fn drop(&mut self) {
        self.sets.follow(self.id, self.local);
    }
}

impl Locals {
    pub fn get(&self, id: &str) -> Option<&Local> {
        self.map.get(id).map(|local| &**local)
    }

    /// The entry with its id as held (borrowed from the map).
    pub fn get_key_value(&self, id: &str) -> Option<(&String, &Local)> {
        self.map.get_key_value(id).map(|(id, local)| (id, &**local))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<LocalMut<'_>> {
        let Locals { map, sets } = self;
        let (key, local) = map.range_mut::<str, _>((Bound::Included(id), Bound::Unbounded)).next().filter(|(key, _)| key.as_str() == id)?;
        Some(LocalMut { id: key.as_str(), local, sets })
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    pub fn insert(&mut self, id: String, local: Local) {
        self.sets.follow(&id, &local);
        self.map.insert(id, Box::new(local));
    }

    pub fn remove(&mut self, id: &str) -> Option<Local> {
        self.sets.drop_id(id);
        self.map.remove(id).map(|local| *local)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> Entries<'_> {
        self.map.iter().map(unbox)
    }

    pub fn keys(&self) -> std::collections::btree_map::Keys<'_, String, Box<Local>> {
        self.map.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &Local> + Clone + '_ {
        self.map.values().map(|local| &**local)
    }

    /// Changes every entry; every set follows.
    pub fn for_each_mut(&mut self, mut change: impl FnMut(&str, &mut Local)) {
        for (id, local) in &mut self.map {
            change(id, local);
            self.sets.follow(id, local);
        }
    }

    /// Ids not probed yet.
    pub fn unknown(&self) -> &BTreeSet<String> {
        &self.sets.unknown
    }

    /// Ids of every entry but the quiet ones (`is_quiet`).
    pub fn awake(&self) -> &BTreeSet<String> {
        &self.sets.awake
    }

    /// Ids whose status changed since it was written.
    pub fn dirty(&self) -> &BTreeSet<String> {
        &self.sets.dirty
    }

    /// Ids with an operation running.
    pub fn busy(&self) -> &BTreeSet<String> {
        &self.sets.busy
    }

    /// The awake entries, in id order.
    pub fn awake_entries(&self) -> impl Iterator<Item = (&String, &Local)> + '_ {
        self.sets.awake.iter().filter_map(|id| self.get_key_value(id.as_str()))
    }

    /// The awake entries probed, in id order.
    pub fn awake_known_entries(&self) -> impl Iterator<Item = (&String, &Local)> + '_ {
        self.sets.awake_known.iter().filter_map(|id| self.get_key_value(id.as_str()))
    }
}

impl std::ops::Index<&str> for Locals {
    type Output = Local;
    fn index(&self, id: &str) -> &Local {
        &self.map[id]
    }
}

/// The entries in id order, as `Locals::iter` gives them.
pub type Entries<'a> = std::iter::Map<std::collections::btree_map::Iter<'a, String, Box<Local>>, fn((&'a String, &'a Box<Local>)) -> (&'a String, &'a Local)>;

// The map's own item type: a `fn` pointer must take it as the iterator yields it.
#[allow(clippy::borrowed_box)]
fn unbox<'a>((id, local): (&'a String, &'a Box<Local>)) -> (&'a String, &'a Local) {
    (id, local)
}

impl<'a> IntoIterator for &'a Locals {
    type Item = (&'a String, &'a Local);
    type IntoIter = Entries<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::agent::reconcile::Action;

    fn status(id: &str) -> crate::api::records::ResourceStatus {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "node": "n1", "role": "Unknown",
            "definition": {"agent": "ocf:pacer:Dummy"}, "history": [],
        }))
        .expect("a status")
    }

    /// What a scan of every entry finds, set by set.
    fn scanned(locals: &Locals) -> [BTreeSet<String>; 5] {
        let of = |keep: &dyn Fn(&Local) -> bool| locals.iter().filter(|(_, local)| keep(local)).map(|(id, _)| id.clone()).collect();
        [
            of(&|local| local.status.role == ObservedRole::Unknown),
            of(&|local| !is_quiet(local)),
            of(&|local| !is_quiet(local) && local.status.role != ObservedRole::Unknown),
            of(&|local| local.dirty),
            of(&|local| local.busy.is_some()),
        ]
    }

    proptest! {
        /// Invariant: every set holds exactly the ids a scan would find.
        #[test]
        fn sets_follow_every_change(changes in proptest::collection::vec((0usize..6, 0u8..9), 1..200)) {
            let mut locals = Locals::default();
            for (which, change) in changes {
                let id = format!("r{which}");
                if !locals.contains_key(&id) {
                    locals.insert(id.clone(), Local::new(status(&id)));
                }
                match change {
                    0 => { locals.remove(&id); }
                    1 => locals.for_each_mut(|_, local| local.dirty = !local.dirty),
                    _ => {
                        let Some(mut local) = locals.get_mut(&id) else { continue };
                        match change {
                            2 => local.status.role = ObservedRole::Stopped,
                            3 => local.status.role = ObservedRole::Started,
                            4 => local.busy = if local.busy.is_some() { None } else { Some(Action::Probe) },
                            5 => local.dirty = !local.dirty,
                            6 => { local.monitors.insert(10_000, std::time::Instant::now()); }
                            7 => local.monitors.clear(),
                            _ => local.status.pending = if local.status.pending.is_some() { None } else { Some("start".into()) },
                        }
                    }
                }
                let [unknown, awake, awake_known, dirty, busy] = scanned(&locals);
                prop_assert_eq!(locals.unknown(), &unknown);
                prop_assert_eq!(locals.awake(), &awake);
                prop_assert_eq!(&locals.sets.awake_known, &awake_known);
                prop_assert_eq!(locals.dirty(), &dirty);
                prop_assert_eq!(locals.busy(), &busy);
            }
        }
    }
}
