//! Identity resolution: which ids belong to one profile.
//!
//! Every `userId` and `anonymousId` seen belongs to exactly one profile. A message carrying
//! both links them; an alias links `previousId` to `userId`. Linking two ids of different
//! profiles merges the profiles: the profile of the user id (the known side) stays and the
//! other one is re-pointed into it, so events sent before identification follow the user.
//!
//! A merge that would join two profiles that each already hold a user id (two different known
//! users) is a user-user merge: it is always recorded in `identity_merges`, and it is made only
//! when `allow_user_merge` is set. Refused, the two users keep their own profiles.
//!
//! A new profile is named after the id that created it, `user_id:u1` or `anonymous_id:a1`;
//! the name stays when ids join later, so a rebuild from the same log gives the same names.
//!
//! An alias's `previousId` is taken as a user id when that user id is known, otherwise as an
//! anonymous id (the usual case: a visitor who signs up).

use std::collections::HashMap;

/// The kind of an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdType {
    /// A `userId`.
    UserId,
    /// An `anonymousId`.
    AnonymousId,
}

impl IdType {
    fn index(self) -> usize {
        match self {
            IdType::UserId => 0,
            IdType::AnonymousId => 1,
        }
    }

    /// `user_id` or `anonymous_id`, as in `profile_ids.id_type` and the Profile API.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::UserId => "user_id",
            IdType::AnonymousId => "anonymous_id",
        }
    }

    /// Parses [`IdType::as_str`].
    pub fn from_name(name: &str) -> Option<IdType> {
        match name {
            "user_id" => Some(IdType::UserId),
            "anonymous_id" => Some(IdType::AnonymousId),
            _ => None,
        }
    }
}

/// What resolving one message changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A new id joined `profile` (a new profile when the name is new).
    NewId {
        /// Kind of id.
        id_type: IdType,
        /// The id.
        id: String,
        /// Its profile.
        profile: String,
    },
    /// A user-user merge was met; `allowed` says whether it was made.
    UserMerge {
        /// The profile that stays.
        kept: String,
        /// The profile that would disappear.
        merged: String,
        /// The message's user id.
        user_id: String,
        /// A user id of the other profile.
        other_user_id: String,
        /// Whether the merge was made.
        allowed: bool,
    },
    /// Profile `from` was merged into `to`.
    Repoint {
        /// The profile that disappears.
        from: String,
        /// The profile that stays.
        to: String,
    },
}

/// One profile of the graph: a union-find node.
#[derive(Clone, Debug)]
struct Profile {
    /// Its name (`user_id:u1`, `anonymous_id:a1`).
    name: Box<str>,
    /// The profile it was merged into, or itself while it stands.
    parent: u32,
    /// The smallest user id among its ids (kept for standing profiles).
    first_user: Option<Box<str>>,
}

/// The id graph, in memory, loaded from `profile_ids`.
///
/// Each id points at the profile it joined; a merged profile points at the profile it was
/// merged into (a union-find forest, paths halved as they are followed), so a merge is one
/// write however many ids the merged profile has, and an id costs one map entry (about 200
/// bytes with UUID ids, where a map from id to profile name and a list of every profile's
/// ids took 500: `examples/identity_memory.rs`).
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The profile of every id, one map per [`IdType`] (looked up without allocating).
    ids: [HashMap<Box<str>, u32>; 2],
    profiles: Vec<Profile>,
    /// Profile names to profiles, only while rows are loaded ([`Identity::load`]).
    by_name: HashMap<Box<str>, u32>,
    allow_user_merge: bool,
}

impl Identity {
    /// An empty graph.
    pub fn new(allow_user_merge: bool) -> Identity {
        Identity {
            allow_user_merge,
            ..Identity::default()
        }
    }

    /// Adds a stored `(id_type, id, profile)` row. Call [`Identity::loaded`] after the last.
    pub fn load(&mut self, id_type: IdType, id: String, profile: String) {
        if self.by_name.is_empty() && !self.profiles.is_empty() {
            // Loading again after `loaded`: index the standing profiles by name again.
            for i in 0..self.profiles.len() {
                let root = self.find(i as u32);
                if root == i as u32 {
                    self.by_name.insert(self.profiles[i].name.clone(), root);
                }
            }
        }
        let p = match self.by_name.get(profile.as_str()) {
            Some(&p) => p,
            None => {
                let p = self.new_profile(profile.clone().into_boxed_str());
                self.by_name.insert(profile.into_boxed_str(), p);
                p
            }
        };
        if id_type == IdType::UserId {
            self.note_user(p, &id);
        }
        self.ids[id_type.index()].insert(id.into_boxed_str(), p);
    }

    /// Frees what only loading needs.
    pub fn loaded(&mut self) {
        self.by_name = HashMap::new();
    }

    fn new_profile(&mut self, name: Box<str>) -> u32 {
        let p = self.profiles.len() as u32;
        self.profiles.push(Profile {
            name,
            parent: p,
            first_user: None,
        });
        p
    }

    /// The standing profile `p` belongs to (halving the path on the way).
    fn find(&mut self, mut p: u32) -> u32 {
        loop {
            let parent = self.profiles[p as usize].parent;
            if parent == p {
                return p;
            }
            let grandparent = self.profiles[parent as usize].parent;
            self.profiles[p as usize].parent = grandparent;
            p = grandparent;
        }
    }

    /// The standing profile `p` belongs to, without changing the forest.
    fn root(&self, mut p: u32) -> u32 {
        loop {
            let parent = self.profiles[p as usize].parent;
            if parent == p {
                return p;
            }
            p = parent;
        }
    }

    /// Keeps `user` as the profile's first user id when it sorts before the one it has.
    fn note_user(&mut self, p: u32, user: &str) {
        let profile = &mut self.profiles[p as usize];
        if profile
            .first_user
            .as_deref()
            .is_none_or(|first| user < first)
        {
            profile.first_user = Some(user.into());
        }
    }

    fn name(&self, p: u32) -> String {
        self.profiles[p as usize].name.to_string()
    }

    /// The profile of an id.
    pub fn profile_of(&self, id_type: IdType, id: &str) -> Option<&str> {
        let p = *self.ids[id_type.index()].get(id)?;
        Some(&self.profiles[self.root(p) as usize].name)
    }

    /// The standing profile of an id.
    fn lookup(&mut self, id_type: IdType, id: &str) -> Option<u32> {
        let p = *self.ids[id_type.index()].get(id)?;
        Some(self.find(p))
    }

    fn add(&mut self, id_type: IdType, id: &str, p: u32, effects: &mut Vec<Effect>) {
        self.ids[id_type.index()].insert(id.into(), p);
        if id_type == IdType::UserId {
            self.note_user(p, id);
        }
        effects.push(Effect::NewId {
            id_type,
            id: id.to_owned(),
            profile: self.name(p),
        });
    }

    fn ensure(&mut self, id_type: IdType, id: &str, effects: &mut Vec<Effect>) -> u32 {
        if let Some(p) = self.lookup(id_type, id) {
            return p;
        }
        let p = self.new_profile(format!("{}:{id}", id_type.as_str()).into_boxed_str());
        self.add(id_type, id, p, effects);
        p
    }

    /// The type an alias's `previousId` is taken as.
    pub fn previous_id_type(&self, previous_id: &str) -> IdType {
        if self.profile_of(IdType::UserId, previous_id).is_some() {
            IdType::UserId
        } else {
            IdType::AnonymousId
        }
    }

    /// Resolves the ids of one message: `user` (its userId) and `other` (its anonymousId, or
    /// an alias's previousId). Returns the profile the message belongs to (the user id's
    /// profile when there is a user id) and appends what changed to `effects`.
    pub fn observe(
        &mut self,
        user: Option<&str>,
        other: Option<(IdType, &str)>,
        effects: &mut Vec<Effect>,
    ) -> Option<String> {
        let p = self.resolve(user, other, effects)?;
        Some(self.name(p))
    }

    fn resolve(
        &mut self,
        user: Option<&str>,
        other: Option<(IdType, &str)>,
        effects: &mut Vec<Effect>,
    ) -> Option<u32> {
        let (user, (other_type, other_id)) = match (user, other) {
            (None, None) => return None,
            (Some(u), None) => return Some(self.ensure(IdType::UserId, u, effects)),
            (None, Some((t, o))) => return Some(self.ensure(t, o, effects)),
            (Some(u), Some(other)) => (u, other),
        };
        if other_type == IdType::UserId && other_id == user {
            return Some(self.ensure(IdType::UserId, user, effects));
        }
        let pu = self.lookup(IdType::UserId, user);
        let po = self.lookup(other_type, other_id);
        match (pu, po) {
            (None, None) => {
                let p = self.new_profile(format!("user_id:{user}").into_boxed_str());
                self.add(IdType::UserId, user, p, effects);
                self.add(other_type, other_id, p, effects);
                Some(p)
            }
            (Some(p), None) => {
                self.add(other_type, other_id, p, effects);
                Some(p)
            }
            (None, Some(p)) => {
                self.add(IdType::UserId, user, p, effects);
                Some(p)
            }
            (Some(kept), Some(merged)) if kept == merged => Some(kept),
            (Some(kept), Some(merged)) => {
                if let Some(other_user) = self.profiles[merged as usize].first_user.clone() {
                    let allowed = self.allow_user_merge;
                    effects.push(Effect::UserMerge {
                        kept: self.name(kept),
                        merged: self.name(merged),
                        user_id: user.to_owned(),
                        other_user_id: other_user.to_string(),
                        allowed,
                    });
                    if !allowed {
                        return Some(kept);
                    }
                }
                self.profiles[merged as usize].parent = kept;
                if let Some(first) = self.profiles[merged as usize].first_user.take() {
                    self.note_user(kept, &first);
                }
                effects.push(Effect::Repoint {
                    from: self.name(merged),
                    to: self.name(kept),
                });
                Some(kept)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_then_identified_keeps_one_profile() {
        let mut id = Identity::new(false);
        let mut fx = Vec::new();
        let p1 = id.observe(None, Some((IdType::AnonymousId, "a1")), &mut fx);
        let p2 = id.observe(Some("u1"), Some((IdType::AnonymousId, "a1")), &mut fx);
        assert_eq!(p1.as_deref(), Some("anonymous_id:a1"));
        assert_eq!(p2, p1);
        assert_eq!(id.profile_of(IdType::UserId, "u1"), Some("anonymous_id:a1"));
    }

    #[test]
    fn ids_follow_chains_of_merges() {
        let mut id = Identity::new(true);
        let mut fx = Vec::new();
        id.observe(None, Some((IdType::AnonymousId, "a1")), &mut fx);
        id.observe(None, Some((IdType::AnonymousId, "a2")), &mut fx);
        id.observe(Some("u1"), Some((IdType::AnonymousId, "a2")), &mut fx);
        // a1's profile joins u1's (which a2 created), then u1's joins u2's.
        fx.clear();
        id.observe(Some("u1"), Some((IdType::AnonymousId, "a1")), &mut fx);
        assert_eq!(
            fx,
            [Effect::Repoint {
                from: "anonymous_id:a1".into(),
                to: "anonymous_id:a2".into()
            }]
        );
        id.observe(Some("u2"), None, &mut fx);
        fx.clear();
        let p = id.observe(Some("u2"), Some((IdType::UserId, "u1")), &mut fx);
        assert_eq!(p.as_deref(), Some("user_id:u2"));
        // The merged profile held u1: recorded as a user-user merge, then made (allowed).
        assert!(matches!(&fx[0], Effect::UserMerge { other_user_id, .. } if other_user_id == "u1"));
        for (t, i) in [
            (IdType::AnonymousId, "a1"),
            (IdType::AnonymousId, "a2"),
            (IdType::UserId, "u1"),
            (IdType::UserId, "u2"),
        ] {
            assert_eq!(id.profile_of(t, i), Some("user_id:u2"), "{i}");
        }
    }

    #[test]
    fn loaded_rows_give_the_same_graph() {
        let mut id = Identity::new(false);
        id.load(IdType::AnonymousId, "a1".into(), "anonymous_id:a1".into());
        id.load(IdType::UserId, "u1".into(), "anonymous_id:a1".into());
        id.loaded();
        // Rows loaded after `loaded` still find their profile by name.
        id.load(IdType::AnonymousId, "a9".into(), "anonymous_id:a1".into());
        id.loaded();
        assert_eq!(
            id.profile_of(IdType::AnonymousId, "a9"),
            Some("anonymous_id:a1")
        );
        assert_eq!(id.previous_id_type("u1"), IdType::UserId);
        let mut fx = Vec::new();
        id.observe(Some("u2"), None, &mut fx);
        fx.clear();
        // The loaded profile holds u1: joining it to u2's is a user-user merge (refused).
        let p = id.observe(Some("u2"), Some((IdType::AnonymousId, "a9")), &mut fx);
        assert_eq!(p.as_deref(), Some("user_id:u2"));
        assert!(
            matches!(&fx[0], Effect::UserMerge { other_user_id, allowed: false, .. } if other_user_id == "u1")
        );
        assert_eq!(
            id.profile_of(IdType::AnonymousId, "a1"),
            Some("anonymous_id:a1")
        );
    }

    #[test]
    fn user_user_merge_is_refused_unless_allowed() {
        for allowed in [false, true] {
            let mut id = Identity::new(allowed);
            let mut fx = Vec::new();
            id.observe(Some("u1"), Some((IdType::AnonymousId, "a1")), &mut fx);
            id.observe(Some("u2"), None, &mut fx);
            fx.clear();
            let p = id.observe(Some("u2"), Some((IdType::AnonymousId, "a1")), &mut fx);
            assert_eq!(p.as_deref(), Some("user_id:u2"));
            assert!(matches!(&fx[0], Effect::UserMerge { allowed: a, .. } if *a == allowed));
            let expected = if allowed { "user_id:u2" } else { "user_id:u1" };
            assert_eq!(id.profile_of(IdType::AnonymousId, "a1"), Some(expected));
        }
    }
}
