//! `pacer events`: the cluster's events, oldest first — the log the leader sequences
//! (`<prefix>.events/log/`), then the events agents wrote that are not sequenced yet
//! (no leader, or one just elected), so that nothing seen is hidden for want of a
//! leader — filtered by what they are about and how recent they are; and following
//! the log as it grows (`EventWatch`). Read only.
//!
//! What `--for` means: `node/NAME` is every event about that node (its operations and
//! attribute changes, its fencing, its joining and loss — the event's `node`, not who
//! reported it); `resource/NAME` is every event of that resource — its clone's
//! instances `NAME:N` included — and, for a group, of each of its members (and their
//! instances). A name no object has any more still finds the events it had.

use std::collections::BTreeSet;
use std::str::FromStr;

use crate::api::records::EventRecord;
use crate::api::{Kind, ObjectKey, Spec};
use crate::store::watch::{PrefixWatcher, WatchEvent};
use crate::store::{Store, Undecodable};

use super::OpsError;

/// What `--for` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// `resource/NAME`: a resource, a clone (its instances) or a group (its members).
    Resource(String),
    /// `node/NAME`.
    Node(String),
}

impl FromStr for Subject {
    type Err = String;

    fn from_str(text: &str) -> Result<Subject, String> {
        let refused = || format!("{text:?} is not resource/NAME or node/NAME");
        let (kind, name) = text.split_once('/').ok_or_else(refused)?;
        if name.is_empty() || name.contains('/') {
            return Err(refused());
        }
        match kind {
            "resource" | "resources" | "rsc" | "group" => Ok(Subject::Resource(name.to_string())),
            "node" | "nodes" => Ok(Subject::Node(name.to_string())),
            _ => Err(refused()),
        }
    }
}

/// Which events to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Events about any of these resources (instance ids `NAME:N` included); `None`:
    /// any.
    pub resources: Option<BTreeSet<String>>,
    /// Events about this node; `None`: any.
    pub node: Option<String>,
    /// Only events at or after this time (microseconds since the epoch).
    pub since_usec: Option<i64>,
}

impl Filter {
    pub fn matches(&self, event: &EventRecord) -> bool {
        self.resources.as_ref().is_none_or(|names| names.iter().any(|name| event.is_about_resource(name)))
            && self.node.as_ref().is_none_or(|node| event.node.as_deref() == Some(node.as_str()))
            && self.since_usec.is_none_or(|since| event.time_usec >= since)
    }
}

/// The events as listed at one revision.
#[derive(Debug, Default)]
pub struct Events {
    /// The revision of the log's read: a watch follows from the next.
    pub revision: i64,
    /// The last sequence in the log as read (whatever the filter): a watch delivers
    /// only later ones.
    pub last_sequence: u64,
    /// The sequenced events that match, oldest first.
    pub sequenced: Vec<EventRecord>,
    /// The matching events written but not yet sequenced (`sequence` 0), in the order
    /// they were written.
    pub pending: Vec<EventRecord>,
    /// Keys whose value does not decode (named on stderr by the CLI).
    pub undecodable: Vec<Undecodable>,
}

/// The filter for `subject` and `since_usec`: a resource name is resolved against the
/// stored objects (a group stands for its members too).
pub async fn filter(store: &Store, subject: Option<&Subject>, since_usec: Option<i64>) -> Result<Filter, OpsError> {
    let mut filter = Filter { since_usec, ..Filter::default() };
    match subject {
        None => {}
        Some(Subject::Node(node)) => filter.node = Some(node.clone()),
        Some(Subject::Resource(name)) => {
            let listing = store.list_objects().await?;
            let group = listing.objects.get(&ObjectKey { kind: Kind::Group, name: name.as_str().into() });
            let mut names = BTreeSet::from([name.clone()]);
            if let Some(Spec::Group(group)) = group.map(|stored| &stored.object.spec) {
                names.extend(group.members.iter().map(ToString::to_string));
            }
            filter.resources = Some(names);
        }
    }
    Ok(filter)
}

/// The log and the pending events that match `filter`, oldest first.
pub async fn list(store: &Store, filter: &Filter) -> Result<Events, OpsError> {
    let listing = store.list_events().await?;
    Ok(Events {
        revision: listing.revision,
        last_sequence: listing.events.last().map_or(0, |event| event.sequence),
        sequenced: listing.events.into_iter().filter(|event| filter.matches(event)).collect(),
        pending: listing.pending.into_iter().filter(|event| filter.matches(event)).collect(),
        undecodable: listing.undecodable,
    })
}

/// Follows the log after a listing: each event the leader sequences from then on that
/// matches the filter (its time is not checked: `since` is for the listing), once.
pub struct EventWatch {
    store: Store,
    watcher: PrefixWatcher,
    delivered: Delivered,
}

/// What a watch has delivered (pure).
#[derive(Debug)]
struct Delivered {
    filter: Filter,
    /// The highest sequence delivered (or listed): a relisting after a compaction
    /// delivers only what is newer.
    last_sequence: u64,
    /// Pending events the listing showed: when the leader sequences one, it is not
    /// delivered again.
    shown_pending: Vec<EventRecord>,
}

impl EventWatch {
    /// Follows the log from the revision after `listed`'s.
    pub fn after(store: &Store, listed: &Events, filter: &Filter) -> EventWatch {
        EventWatch {
            store: store.clone(),
            watcher: PrefixWatcher::from_revision(store, store.keys().event_log_prefix(), listed.revision),
            delivered: Delivered::after(listed, filter),
        }
    }

    /// The next events sequenced that match, in order (waits until there are some).
    /// An error is etcd out of reach; calling again resumes.
    pub async fn next(&mut self) -> Result<Vec<EventRecord>, OpsError> {
        loop {
            let entries = match self.watcher.next().await? {
                WatchEvent::Put(entry) => vec![entry],
                WatchEvent::Restarted { entries, .. } => entries,
                // The leader trimming the log.
                WatchEvent::Deleted { .. } => continue,
            };
            let mut events = Vec::new();
            for entry in &entries {
                match self.store.decode_event(entry) {
                    Ok(event) => events.push(event),
                    Err(error) => tracing::warn!(%error, "skipping an event that does not decode"),
                }
            }
            let fresh = self.delivered.take_new(events);
            if !fresh.is_empty() {
                return Ok(fresh);
            }
        }
    }
}

impl Delivered {
    fn after(listed: &Events, filter: &Filter) -> Delivered {
        Delivered { filter: Filter { since_usec: None, ..filter.clone() }, last_sequence: listed.last_sequence, shown_pending: listed.pending.clone() }
    }

    /// Of `events` (sequenced), those not delivered yet that match, in order.
    fn take_new(&mut self, mut events: Vec<EventRecord>) -> Vec<EventRecord> {
        events.sort_by_key(|event| event.sequence);
        let mut fresh = Vec::new();
        for event in events {
            if event.sequence <= self.last_sequence {
                continue;
            }
            self.last_sequence = event.sequence;
            let unsequenced = EventRecord { sequence: 0, ..event.clone() };
            if let Some(index) = self.shown_pending.iter().position(|shown| *shown == unsequenced) {
                self.shown_pending.swap_remove(index);
                continue;
            }
            if self.filter.matches(&event) {
                fresh.push(event);
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::EventKind;

    fn resource_event(sequence: u64, node: &str, resource: &str, time_usec: i64) -> EventRecord {
        let mut event = EventRecord::new(EventKind::Resource, node, time_usec, "ok");
        event.sequence = sequence;
        event.node = Some(node.into());
        event.resource = Some(resource.into());
        event.task = Some("start".into());
        event
    }

    #[test]
    fn subjects_are_resource_or_node_and_nothing_else() {
        assert_eq!("resource/web".parse(), Ok(Subject::Resource("web".into())));
        assert_eq!("node/n1".parse(), Ok(Subject::Node("n1".into())));
        for bad in ["pod/x", "web", "resource/", "node/a/b", ""] {
            let refused = bad.parse::<Subject>().expect_err(bad);
            assert!(refused.contains("is not resource/NAME or node/NAME"), "{refused}");
        }
    }

    #[test]
    fn a_resource_filter_takes_instances_and_named_members() {
        let filter = Filter { resources: Some(BTreeSet::from(["web".to_string(), "ip".to_string()])), ..Filter::default() };
        assert!(filter.matches(&resource_event(1, "n1", "web", 0)));
        assert!(filter.matches(&resource_event(1, "n1", "web:2", 0)));
        assert!(filter.matches(&resource_event(1, "n1", "ip", 0)));
        assert!(!filter.matches(&resource_event(1, "n1", "webserver", 0)));
        assert!(!filter.matches(&EventRecord::new(EventKind::Decision, "scheduler", 0, "new decision")));
        let node = Filter { node: Some("n2".into()), since_usec: Some(100), ..Filter::default() };
        assert!(node.matches(&resource_event(1, "n2", "web", 100)));
        assert!(!node.matches(&resource_event(1, "n2", "web", 99)), "before --since");
        assert!(!node.matches(&resource_event(1, "n1", "web", 100)));
    }

    #[test]
    fn a_watch_delivers_each_new_event_once() {
        let listed = Events {
            revision: 10,
            last_sequence: 4,
            sequenced: vec![resource_event(4, "n1", "web", 1)],
            pending: vec![resource_event(0, "n2", "web", 2)],
            ..Events::default()
        };
        let mut watch = Delivered::after(&listed, &Filter { node: Some("n2".into()), since_usec: Some(1_000), ..Filter::default() });
        let fresh = watch.take_new(vec![
            resource_event(4, "n2", "web", 1),
            // The pending event listed, now sequenced: shown already.
            resource_event(5, "n2", "web", 2),
            resource_event(6, "n1", "web", 3),
            resource_event(7, "n2", "db", 4),
        ]);
        assert_eq!(fresh.iter().map(|event| event.sequence).collect::<Vec<_>>(), [7]);
        // A relisting after a compaction brings nothing already delivered.
        assert!(watch.take_new(vec![resource_event(7, "n2", "db", 4)]).is_empty());
    }

    #[test]
    fn a_watch_starts_after_the_whole_log_whatever_the_filter_listed() {
        // `--since` listed nothing of a log that ends at 9: a relisting of that log
        // must not deliver it.
        let listed = Events { revision: 10, last_sequence: 9, ..Events::default() };
        let mut watch = Delivered::after(&listed, &Filter { since_usec: Some(1_000), ..Filter::default() });
        let old: Vec<EventRecord> = (1..=9).map(|sequence| resource_event(sequence, "n1", "web", 1)).collect();
        assert!(watch.take_new(old).is_empty());
        assert_eq!(watch.take_new(vec![resource_event(10, "n1", "web", 1)]).len(), 1);
    }
}
