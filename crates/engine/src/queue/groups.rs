//! Ordering groups: interned group names and, per group, its unsettled messages in send order.
//!
//! A message stores a 4-byte [`GroupId`] instead of its group's name; the name lives once per
//! group, and a group is forgotten (its id reused) as soon as its last message settles, so
//! memory follows the groups in use, not every group ever seen.

use super::message::Seq;
use std::collections::{BTreeSet, HashMap};

/// An interned group name, valid while the group has unsettled messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GroupId(u32);

#[derive(Debug, Default)]
pub(crate) struct Groups {
    ids: HashMap<String, GroupId>,
    /// Indexed by `GroupId`; `None` marks a free slot listed in `free`.
    slots: Vec<Option<Group>>,
    free: Vec<GroupId>,
}

#[derive(Debug)]
struct Group {
    name: String,
    /// Unsettled messages of the group by sequence; the first is the group's head, the only
    /// one that may be delivered.
    pending: BTreeSet<Seq>,
}

impl Groups {
    /// Adds `seq` to the group called `name`, creating the group if needed.
    pub(crate) fn join(&mut self, name: &str, seq: Seq) -> GroupId {
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => self.create(name),
        };
        let inserted = self.group_mut(id).pending.insert(seq);
        assert!(inserted, "message {seq} joined its group twice");
        id
    }

    /// Removes `seq` from its group, dropping the group when it becomes empty.
    pub(crate) fn leave(&mut self, id: GroupId, seq: Seq) {
        let group = self.group_mut(id);
        let removed = group.pending.remove(&seq);
        assert!(removed, "message {seq} left a group it was not in");
        if group.pending.is_empty() {
            let group = self.slots[id.0 as usize]
                .take()
                .expect("group slot is occupied");
            self.ids.remove(&group.name);
            self.free.push(id);
        }
    }

    /// The id of the group called `name`, if it has unsettled messages.
    pub(crate) fn id(&self, name: &str) -> Option<GroupId> {
        self.ids.get(name).copied()
    }

    /// The oldest unsettled message of the group, if the group still exists.
    pub(crate) fn head(&self, id: GroupId) -> Option<Seq> {
        self.slots
            .get(id.0 as usize)?
            .as_ref()?
            .pending
            .first()
            .copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn create(&mut self, name: &str) -> GroupId {
        let group = Group {
            name: name.to_owned(),
            pending: BTreeSet::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id.0 as usize] = Some(group);
                id
            }
            None => {
                let index = u32::try_from(self.slots.len())
                    .expect("fewer than 2^32 groups are live: each holds a message");
                self.slots.push(Some(group));
                GroupId(index)
            }
        };
        self.ids.insert(name.to_owned(), id);
        id
    }

    fn group_mut(&mut self, id: GroupId) -> &mut Group {
        self.slots[id.0 as usize]
            .as_mut()
            .expect("a GroupId is only held while its group is live")
    }
}
