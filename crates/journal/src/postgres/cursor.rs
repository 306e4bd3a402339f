//! Where each route's next claim starts: just after the last message the
//! previous claim took, while the route has a backlog.
//!
//! A claim then descends `messages_claimable` straight to the next
//! messages instead of stepping over the index entries of those already
//! delivered (dead until vacuum reaches them). A cursor only skips what
//! cannot be there, so it is dropped whenever a message may be back in
//! line below it: a claim that came back short (the backlog is done), a
//! retry recorded, a recovery, a replay, a failed group or a lost
//! connection.
//!
//! Ids are drawn at insert time and committed in any order: this node's
//! ingest lanes may commit id 7 after a claim took id 8. A cursor
//! therefore never passes the floor below which every message of this
//! node is committed ([`super::lanes::Lanes::floor_since`]): 7 is claimed
//! next, before any later message of its sender. A message another node
//! commits with a lower id than one already claimed waits for the next
//! short claim (the cross-node order is not kept anyway: see [`super`]).

use std::collections::{HashMap, HashSet};

use super::group::Answers;
use super::request::{Done, Op, Request};
use crate::{MessageId, Outcome};

#[derive(Debug, Default)]
pub(super) struct Cursors(HashMap<String, MessageId>);

impl Cursors {
    /// Sets where each claim of `group` starts, as the cursors stand when
    /// it runs: a request before it in the group that may put a message
    /// back in line makes it start from the beginning. (Two claims of one
    /// route in a group may share a start: the second does not see the
    /// first's messages, which are in flight by then.)
    pub(super) fn aim(&self, group: &mut [Request]) {
        let mut all_reset = false;
        let mut reset = HashSet::new();
        for request in group {
            match &mut request.op {
                Op::Claim { route, after, .. } => {
                    let kept = !all_reset && !reset.contains(route.as_str());
                    *after = self.0.get(route.as_str()).copied().filter(|_| kept);
                }
                Op::Recover(route) => {
                    reset.insert(route.clone());
                }
                op if puts_back_anywhere(op) => all_reset = true,
                _ => {}
            }
        }
    }

    /// Moves the cursors past what `group`'s claims took, once it
    /// committed, but not past `floor` (`None`: no limit).
    pub(super) fn advance(
        &mut self,
        group: &[Request],
        answers: &Answers,
        floor: Option<MessageId>,
    ) {
        for (request, answer) in group.iter().zip(answers) {
            match (&request.op, answer) {
                (Op::Claim { route, limit, .. }, Ok(Done::Claimed(claimed))) => {
                    match claimed.last().filter(|_| claimed.len() == *limit) {
                        Some(last) => {
                            let at = floor.map_or(last.id, |floor| floor.min(last.id));
                            self.0.insert(route.clone(), at)
                        }
                        None => self.0.remove(route),
                    };
                }
                (Op::Recover(route), _) => {
                    self.0.remove(route);
                }
                (op, _) if puts_back_anywhere(op) => self.clear(),
                _ => {}
            }
        }
    }

    /// Every claim starts from the beginning again.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

/// A request that may put a message of any route back in line.
fn puts_back_anywhere(op: &Op) -> bool {
    matches!(
        op,
        Op::Replay(_)
            | Op::Record {
                outcome: Outcome::Retry { .. },
                ..
            }
    )
}
