//! `Row`: one value per node, stored as the value most nodes share plus the nodes that
//! differ.
//!
//! The scheduler keeps a score for every (resource, node) pair; on 1,000 nodes ×
//! 10,000 resources that is ten million cells, and almost all of them hold the
//! starting score (0 on a node that is up). A dense table of them took hundreds of
//! megabytes in the node criteria, again in the assignment's working copy and again in
//! the plan. A `Row` holds the common value once and the exceptions (a location, the
//! current node's stickiness, bans) in a short sorted list; a row with no common value
//! is kept dense. It reads like a slice: `row[node]`, `row.iter()`, `row.len()`.
//!
//! The representation is not observable: equality, iteration and serialization
//! (a sequence of every node's value, as a `Vec` would give) see the values only.

use std::ops::Index;

use serde::{Serialize, Serializer};

/// One value per node (node order), compressed: see the module doc.
#[derive(Clone, Debug)]
pub struct Row<T> {
    len: usize,
    repr: Repr<T>,
}

#[derive(Clone, Debug)]
enum Repr<T> {
    /// Every node holds `common` but those listed, ascending by node, with their value
    /// (never `common` itself).
    Sparse { common: T, exceptions: Vec<(u32, T)> },
    /// No value is shared by enough nodes to be worth the list.
    Dense(Vec<T>),
}

impl<T: Copy + PartialEq> Row<T> {
    /// `len` nodes, all holding `value`.
    pub fn uniform(len: usize, value: T) -> Row<T> {
        Row { len, repr: Repr::Sparse { common: value, exceptions: Vec::new() } }
    }

    /// The row of these values, compressed.
    pub fn from_values(values: Vec<T>) -> Row<T> {
        let len = values.len();
        let Some(common) = majority(values.iter().copied()) else { return Row { len, repr: Repr::Dense(values) } };
        let differing = values.iter().filter(|&&value| value != common).count();
        if !worth_a_list(differing, len) {
            return Row { len, repr: Repr::Dense(values) };
        }
        let exceptions = values.iter().enumerate().filter(|(_, value)| **value != common).map(|(node, value)| (node as u32, *value)).collect();
        Row { len, repr: Repr::Sparse { common, exceptions } }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value most nodes share and the nodes that hold another (ascending, with
    /// their value), or None when the row is kept dense: for a reader that can treat
    /// the nodes holding the common value as one (the assignment's node choice).
    pub fn sparse_parts(&self) -> Option<(T, &[(u32, T)])> {
        match &self.repr {
            Repr::Sparse { common, exceptions } => Some((*common, exceptions)),
            Repr::Dense(_) => None,
        }
    }

    /// Every node's value, in node order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { row: self, node: 0, next_exception: 0 }
    }

    /// The values as a plain vector (a working copy to change many nodes of).
    pub fn to_vec(&self) -> Vec<T> {
        match &self.repr {
            Repr::Dense(values) => values.clone(),
            // The common value filled in one go, then the nodes that differ: a clone
            // instance's row is copied this way once per node choice.
            Repr::Sparse { common, exceptions } => {
                let mut values = vec![*common; self.len];
                for &(node, value) in exceptions {
                    if let Some(slot) = values.get_mut(node as usize) {
                        *slot = value;
                    }
                }
                values
            }
        }
    }

    /// Sets one node's value (a node past the end is ignored, as `get_mut` on a slice
    /// would give nothing to write to).
    pub fn set(&mut self, node: usize, value: T) {
        if node >= self.len {
            return;
        }
        match &mut self.repr {
            Repr::Dense(values) => values[node] = value,
            Repr::Sparse { common, exceptions } => {
                let position = exceptions.binary_search_by_key(&(node as u32), |(listed, _)| *listed);
                // Inserting or removing far from the end of a long list moves all that
                // follows: a row changed that way node after node (a ban of every node)
                // is cheaper dense.
                let moved = match position {
                    Ok(index) if value == *common => exceptions.len() - index - 1,
                    Err(index) if value != *common => exceptions.len() - index,
                    _ => 0,
                };
                if moved > MOST_MOVED {
                    let mut values = self.to_vec();
                    values[node] = value;
                    self.repr = Repr::Dense(values);
                    return;
                }
                match position {
                    Ok(index) if value == *common => {
                        exceptions.remove(index);
                    }
                    Ok(index) => exceptions[index].1 = value,
                    Err(_) if value == *common => {}
                    Err(index) => {
                        exceptions.insert(index, (node as u32, value));
                        // Past half the row, the common value may have changed (a row
                        // being banned node by node): compress again.
                        if exceptions.len() * 2 > self.len {
                            *self = Row::from_values(self.to_vec());
                        }
                    }
                }
            }
        }
    }

    /// Every node to `value`.
    pub fn fill(&mut self, value: T) {
        *self = Row::uniform(self.len, value);
    }

    /// Every node's value replaced by `change(node, value)`.
    pub fn map(&mut self, mut change: impl FnMut(usize, T) -> T) {
        let values = self.iter().enumerate().map(|(node, value)| change(node, value)).collect();
        *self = Row::from_values(values);
    }

    /// The same row with every value converted (nodes that shared a value still do).
    pub fn convert<U: Copy + PartialEq>(&self, convert: impl Fn(T) -> U) -> Row<U> {
        match &self.repr {
            Repr::Dense(values) => Row::from_values(values.iter().map(|value| convert(*value)).collect()),
            Repr::Sparse { common, exceptions } => {
                let common = convert(*common);
                let exceptions = exceptions.iter().map(|(node, value)| (*node, convert(*value))).filter(|(_, value)| *value != common).collect();
                Row { len: self.len, repr: Repr::Sparse { common, exceptions } }
            }
        }
    }
}

impl<T: Copy + PartialEq> Row<T> {
    /// The row of `values` in node order with every node's value replaced by
    /// `change(node, value, other[node])`, for rows of the same nodes. `change` may
    /// depend on the node only through the two rows' values and through `special`
    /// (ascending node numbers, such as the nodes that are down): every other node
    /// holding both common values gets one call's answer. A score merge then costs the
    /// nodes that differ, not every node (issue 19: a dense pass over 1,000 nodes per
    /// merge was most of an assignment). The result is compressed as `from_values`
    /// would compress it.
    pub fn zip_map<U: Copy + PartialEq>(&self, other: &Row<U>, special: &[u32], change: impl Fn(usize, T, U) -> T) -> Row<T> {
        let (Repr::Sparse { common, exceptions }, Repr::Sparse { common: other_common, exceptions: other_exceptions }) = (&self.repr, &other.repr) else {
            return self.zip_map_dense(other, change);
        };
        if self.len != other.len {
            return self.zip_map_dense(other, change);
        }
        let (common, other_common) = (*common, *other_common);
        // Every listed node's new value, then (once a node no list holds is known)
        // those that differ from the new common value.
        // Sized for every listed node: grown by doubling, the list of a clone instance
        // banned from hundreds of nodes was copied over and over.
        let mut listed = Vec::with_capacity((exceptions.len() + other_exceptions.len() + special.len()).min(self.len));
        // The first node no list holds, looked for in the same walk.
        let mut unlisted = None;
        // The three ascending lists walked together, one node at a time (by position:
        // this loop is most of a score merge).
        let (mut mine, mut theirs, mut marked) = (0, 0, 0);
        loop {
            let mut node = exceptions.get(mine).map_or(u32::MAX, |entry| entry.0);
            node = node.min(other_exceptions.get(theirs).map_or(u32::MAX, |entry| entry.0));
            node = node.min(special.get(marked).copied().unwrap_or(u32::MAX));
            // Past the end: every list is done (special nodes there are no nodes of the
            // row).
            if node as usize >= self.len {
                break;
            }
            let expected = listed.last().map_or(0, |&(last, _)| last + 1);
            if unlisted.is_none() && node > expected {
                unlisted = Some(expected);
            }
            let value = match exceptions.get(mine) {
                Some(&(at, value)) if at == node => {
                    mine += 1;
                    value
                }
                _ => common,
            };
            let other = match other_exceptions.get(theirs) {
                Some(&(at, other)) if at == node => {
                    theirs += 1;
                    other
                }
                _ => other_common,
            };
            while special.get(marked) == Some(&node) {
                marked += 1;
            }
            listed.push((node, change(node as usize, value, other)));
        }
        let after_last = listed.last().map_or(0, |&(last, _)| last as usize + 1);
        let Some(free) = unlisted.map(|node| node as usize).or((after_last < self.len).then_some(after_last)) else {
            // Every node is listed, in order.
            return Row::from_values(listed.into_iter().map(|(_, value)| value).collect());
        };
        let new_common = change(free, common, other_common);
        listed.retain(|&(_, value)| value != new_common);
        Row::from_parts(self.len, new_common, listed)
    }

    /// `zip_map` node by node, for a dense row (or rows of different lengths).
    fn zip_map_dense<U: Copy + PartialEq>(&self, other: &Row<U>, change: impl Fn(usize, T, U) -> T) -> Row<T> {
        let values = self.iter().zip(other.iter()).enumerate().map(|(node, (value, other))| change(node, value, other)).collect();
        Row::from_values(values)
    }

    /// The row with every node's value replaced by `change(node, value)`, where
    /// `change` depends on the node only through its value and `special` (see
    /// `zip_map`).
    pub fn map_special(&self, special: &[u32], change: impl Fn(usize, T) -> T) -> Row<T> {
        self.zip_map(&Row::uniform(self.len, ()), special, |node, value, ()| change(node, value))
    }

    /// A row from a common value and the ascending list of the nodes that differ from
    /// it, compressed as `from_values` would: kept as it is while the common value is
    /// the majority; turned around when one of the listed values is (a clone instance
    /// banned from more than half the nodes); otherwise compressed again from every
    /// value.
    fn from_parts(len: usize, common: T, mut exceptions: Vec<(u32, T)>) -> Row<T> {
        if exceptions.len() * 2 < len {
            // Kept for as long as the row: no room left for values that were dropped.
            if exceptions.capacity() > exceptions.len() * 2 + 8 {
                exceptions.shrink_to_fit();
            }
            return Row { len, repr: Repr::Sparse { common, exceptions } };
        }
        // A value held by more than half the nodes is the majority among the listed
        // ones too, and the one `from_values` would choose.
        let listed = majority(exceptions.iter().map(|entry| entry.1));
        let held = listed.map_or(0, |listed| exceptions.iter().filter(|entry| entry.1 == listed).count());
        let Some(majority) = listed.filter(|_| held * 2 > len) else {
            return Row::from_values(Row { len, repr: Repr::Sparse { common, exceptions } }.to_vec());
        };
        // The nodes not listed hold `common`, which is not the majority (listed values
        // differ from it): they all become exceptions, with the listed values that are
        // not the majority.
        let mut differing = Vec::with_capacity(len - held);
        let mut next = 0u32;
        for &(node, value) in &exceptions {
            differing.extend((next..node).map(|unlisted| (unlisted, common)));
            if value != majority {
                differing.push((node, value));
            }
            next = node + 1;
        }
        differing.extend((next..len as u32).map(|unlisted| (unlisted, common)));
        Row { len, repr: Repr::Sparse { common: majority, exceptions: differing } }
    }
}

/// The most exceptions `set` moves to keep a row's list sorted before it makes the row
/// dense instead.
const MOST_MOVED: usize = 64;

/// A list of exceptions is kept while it is shorter than two thirds of the row (an
/// exception takes about one and a half cells).
fn worth_a_list(exceptions: usize, len: usize) -> bool {
    exceptions * 3 <= len * 2
}

/// The value held by more than half of `values` if there is one, else some value
/// (Boyer and Moore's majority vote: one pass, no allocation). None when empty.
fn majority<T: Copy + PartialEq>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut candidate = None;
    let mut count = 0usize;
    for value in values {
        if count == 0 {
            candidate = Some(value);
            count = 1;
        } else if candidate == Some(value) {
            count += 1;
        } else {
            count -= 1;
        }
    }
    candidate
}

impl<T: Copy + PartialEq> Index<usize> for Row<T> {
    type Output = T;

    /// The value of `node`; panics past the end, as a slice does.
    fn index(&self, node: usize) -> &T {
        assert!(node < self.len, "node {node} out of a row of {}", self.len);
        match &self.repr {
            Repr::Dense(values) => &values[node],
            Repr::Sparse { common, exceptions } => match exceptions.binary_search_by_key(&(node as u32), |(listed, _)| *listed) {
                Ok(index) => &exceptions[index].1,
                Err(_) => common,
            },
        }
    }
}

impl<T: Copy + PartialEq> PartialEq for Row<T> {
    fn eq(&self, other: &Row<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Copy + PartialEq + Default> Default for Row<T> {
    fn default() -> Row<T> {
        Row::uniform(0, T::default())
    }
}

impl<T: Copy + PartialEq> FromIterator<T> for Row<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Row<T> {
        Row::from_values(values.into_iter().collect())
    }
}

impl<T: Copy + PartialEq + Serialize> Serialize for Row<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Every node's value in node order (`Row::iter`): one pass, no lookups.
pub struct Iter<'a, T> {
    row: &'a Row<T>,
    node: usize,
    next_exception: usize,
}

impl<T: Copy> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.node >= self.row.len {
            return None;
        }
        let node = self.node;
        self.node += 1;
        Some(match &self.row.repr {
            Repr::Dense(values) => values[node],
            Repr::Sparse { common, exceptions } => match exceptions.get(self.next_exception) {
                Some(&(listed, value)) if listed as usize == node => {
                    self.next_exception += 1;
                    value
                }
                _ => *common,
            },
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.row.len - self.node;
        (left, Some(left))
    }
}

impl<T: Copy> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_row_reads_like_the_vector_it_was_made_from() {
        let values = vec![Some(0), Some(0), None, Some(0), Some(-5), Some(0)];
        let row = Row::from_values(values.clone());
        assert_eq!(row.len(), 6);
        assert_eq!(row.to_vec(), values);
        assert_eq!((0..6).map(|node| row[node]).collect::<Vec<_>>(), values);
        assert!(matches!(row.repr, Repr::Sparse { common: Some(0), ref exceptions } if exceptions.len() == 2));
        assert_eq!(serde_json::to_string(&row).ok(), serde_json::to_string(&values).ok());
    }

    #[test]
    fn a_row_banned_node_by_node_stays_short() {
        // A clone instance's row once the nodes already holding an instance are out.
        let mut row = Row::uniform(100, 0i64);
        for node in 0..90 {
            row.set(node, -1);
            let Repr::Sparse { exceptions, .. } = &row.repr else { panic!("dense after {node} bans") };
            assert!(exceptions.len() <= 51, "{} exceptions after {node} bans", exceptions.len());
        }
        assert_eq!(row.iter().filter(|value| *value == -1).count(), 90);
        assert_eq!(row[95], 0);
    }

    #[test]
    fn rows_with_no_common_value_are_dense_and_equal_by_value() {
        let row = Row::from_values((0..10).collect::<Vec<i64>>());
        assert!(matches!(row.repr, Repr::Dense(_)));
        let mut same = Row::uniform(10, 0i64);
        for node in 0..10 {
            same.set(node, node as i64);
        }
        assert_eq!(row, same);
        assert_ne!(row, Row::uniform(10, 0));
    }

    #[test]
    fn a_long_list_changed_in_its_middle_becomes_dense() {
        let mut row = Row::uniform(1000, 0i64);
        for node in (0..400).rev() {
            row.set(node, 1);
        }
        assert!(matches!(row.repr, Repr::Dense(_)));
        assert_eq!(row.iter().filter(|value| *value == 1).count(), 400);
    }

    /// A row made from `values` in every representation it can have: as compressed,
    /// built node by node with `set`, and dense.
    fn representations(values: &[i64]) -> Vec<Row<i64>> {
        let mut by_set = Row::uniform(values.len(), 0);
        for (node, value) in values.iter().enumerate() {
            by_set.set(node, *value);
        }
        vec![Row::from_values(values.to_vec()), by_set, Row { len: values.len(), repr: Repr::Dense(values.to_vec()) }]
    }

    /// Whether two rows have the same values and the same representation.
    fn same_repr(left: &Row<i64>, right: &Row<i64>) -> bool {
        left.len == right.len
            && match (&left.repr, &right.repr) {
                (Repr::Dense(a), Repr::Dense(b)) => a == b,
                (Repr::Sparse { common: a, exceptions: x }, Repr::Sparse { common: b, exceptions: y }) => a == b && x == y,
                _ => false,
            }
    }

    proptest! {
        #[test]
        fn zip_map_matches_a_pass_over_every_node(
            pairs in proptest::collection::vec((0i64..3, 0i64..3), 0..40),
            special in proptest::collection::btree_set(0u32..45, 0..6),
        ) {
            let (left, right): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
            let special: Vec<u32> = special.into_iter().collect();
            // Depends on the node only through the special nodes.
            let change = |node: usize, value: i64, other: i64| if special.contains(&(node as u32)) { value - other } else { value * 2 + other };
            let expected: Vec<i64> = left.iter().zip(&right).enumerate().map(|(node, (value, other))| change(node, *value, *other)).collect();
            for row in representations(&left) {
                for other in representations(&right) {
                    let zipped = row.zip_map(&other, &special, change);
                    prop_assert_eq!(zipped.to_vec(), expected.clone());
                    prop_assert!(same_repr(&zipped, &Row::from_values(expected.clone())));
                }
                let mapped = row.map_special(&special, |node, value| change(node, value, 1));
                prop_assert_eq!(mapped.to_vec(), left.iter().enumerate().map(|(node, value)| change(node, *value, 1)).collect::<Vec<_>>());
            }
        }
    }

    proptest! {
        #[test]
        fn every_operation_matches_a_plain_vector(
            initial in proptest::collection::vec(0i64..3, 0..40),
            writes in proptest::collection::vec((0usize..45, 0i64..4), 0..80),
            fill in proptest::option::of(0i64..3),
        ) {
            let mut expected = initial.clone();
            let mut row = Row::from_values(initial);
            for (node, value) in writes {
                row.set(node, value);
                if let Some(slot) = expected.get_mut(node) {
                    *slot = value;
                }
                prop_assert_eq!(row.to_vec(), expected.clone());
            }
            row.map(|node, value| value + node as i64 % 2);
            for (node, value) in expected.iter_mut().enumerate() {
                *value += node as i64 % 2;
            }
            prop_assert_eq!(row.to_vec(), expected.clone());
            prop_assert_eq!(row.convert(|value| value / 2).to_vec(), expected.iter().map(|value| value / 2).collect::<Vec<_>>());
            if let Some(value) = fill {
                row.fill(value);
                prop_assert!(row.iter().all(|cell| cell == value));
                prop_assert_eq!(row.len(), expected.len());
            }
        }
    }
}
