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

/// The id graph, in memory, loaded from `profile_ids`.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The profile of every id, one map per [`IdType`] (looked up without allocating).
    ids: [HashMap<String, String>; 2],
    members: HashMap<String, Vec<(IdType, String)>>,
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

    /// Adds a stored `(id_type, id, profile)` row.
    pub fn load(&mut self, id_type: IdType, id: String, profile: String) {
        self.members
            .entry(profile.clone())
            .or_default()
            .push((id_type, id.clone()));
        self.ids[id_type.index()].insert(id, profile);
    }

    /// The profile of an id.
    pub fn profile_of(&self, id_type: IdType, id: &str) -> Option<&str> {
        self.ids[id_type.index()].get(id).map(String::as_str)
    }

    fn add(&mut self, id_type: IdType, id: &str, profile: &str, effects: &mut Vec<Effect>) {
        self.ids[id_type.index()].insert(id.to_owned(), profile.to_owned());
        self.members
            .entry(profile.to_owned())
            .or_default()
            .push((id_type, id.to_owned()));
        effects.push(Effect::NewId {
            id_type,
            id: id.to_owned(),
            profile: profile.to_owned(),
        });
    }

    fn ensure(&mut self, id_type: IdType, id: &str, effects: &mut Vec<Effect>) -> String {
        if let Some(p) = self.profile_of(id_type, id) {
            return p.to_owned();
        }
        let profile = format!("{}:{id}", id_type.as_str());
        self.add(id_type, id, &profile, effects);
        profile
    }

    fn first_user(&self, profile: &str) -> Option<String> {
        let mut users: Vec<&String> = self
            .members
            .get(profile)?
            .iter()
            .filter(|(t, _)| *t == IdType::UserId)
            .map(|(_, id)| id)
            .collect();
        users.sort();
        users.first().map(|s| (*s).clone())
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
        let (user, (other_type, other_id)) = match (user, other) {
            (None, None) => return None,
            (Some(u), None) => return Some(self.ensure(IdType::UserId, u, effects)),
            (None, Some((t, o))) => return Some(self.ensure(t, o, effects)),
            (Some(u), Some(other)) => (u, other),
        };
        if other_type == IdType::UserId && other_id == user {
            return Some(self.ensure(IdType::UserId, user, effects));
        }
        let pu = self.profile_of(IdType::UserId, user).map(str::to_owned);
        let po = self.profile_of(other_type, other_id).map(str::to_owned);
        match (pu, po) {
            (None, None) => {
                let profile = format!("user_id:{user}");
                self.add(IdType::UserId, user, &profile, effects);
                self.add(other_type, other_id, &profile, effects);
                Some(profile)
            }
            (Some(p), None) => {
                self.add(other_type, other_id, &p, effects);
                Some(p)
            }
            (None, Some(p)) => {
                self.add(IdType::UserId, user, &p, effects);
                Some(p)
            }
            (Some(kept), Some(merged)) if kept == merged => Some(kept),
            (Some(kept), Some(merged)) => {
                if let Some(other_user) = self.first_user(&merged) {
                    let allowed = self.allow_user_merge;
                    effects.push(Effect::UserMerge {
                        kept: kept.clone(),
                        merged: merged.clone(),
                        user_id: user.to_owned(),
                        other_user_id: other_user,
                        allowed,
                    });
                    if !allowed {
                        return Some(kept);
                    }
                }
                let moved = self.members.remove(&merged).unwrap_or_default();
                for (id_type, id) in &moved {
                    self.ids[id_type.index()].insert(id.clone(), kept.clone());
                }
                self.members.entry(kept.clone()).or_default().extend(moved);
                effects.push(Effect::Repoint {
                    from: merged,
                    to: kept.clone(),
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
