//! Duplicate detection for a run of ingests stored by one statement.
//!
//! One `INSERT … SELECT FROM unnest(…)` stores a whole run, so the
//! sequential rule (each message is compared with everything stored before
//! it, the earlier messages of its batch included) is applied here, from
//! the database's answer for each message and the run's own messages.

use crate::{Ingested, MessageId, NewMessage};

/// What becomes of each message of a run, in order.
#[derive(Debug, Default)]
pub(super) struct Plan {
    fates: Vec<Fate>,
    /// Indexes (in the run) of the messages to insert, in order.
    inserts: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Stored as the run's `k`-th inserted row.
    Insert(usize),
    /// A duplicate of a message stored before the run.
    Earlier(MessageId),
    /// A duplicate of the run's `k`-th inserted row.
    InRun(usize),
}

impl Plan {
    /// `earlier[i]`: the first stored message that `messages[i]` repeats,
    /// as the database answered (`None` for messages without a window).
    /// Rows stored before the run all have lower ids than the run's, so
    /// the database's answer, when there is one, is the earliest.
    pub(super) fn new(messages: &[&NewMessage], earlier: &[Option<MessageId>]) -> Plan {
        let mut plan = Plan::default();
        for (i, message) in messages.iter().enumerate() {
            let fate = match (message.dedup_since_ms, earlier.get(i).copied().flatten()) {
                (None, _) => None,
                (Some(_), Some(id)) => Some(Fate::Earlier(id)),
                (Some(since), None) => plan.repeated_in_run(messages, message, since),
            };
            let fate = fate.unwrap_or_else(|| {
                plan.inserts.push(i);
                Fate::Insert(plan.inserts.len() - 1)
            });
            plan.fates.push(fate);
        }
        plan
    }

    /// The first message inserted earlier in the run that `message` repeats.
    fn repeated_in_run(
        &self,
        messages: &[&NewMessage],
        message: &NewMessage,
        since: i64,
    ) -> Option<Fate> {
        self.inserts
            .iter()
            .position(|&j| {
                same_sender_and_control_id(messages[j], message)
                    && messages[j].received_at_ms >= since
            })
            .map(Fate::InRun)
    }

    /// The run's messages to insert, in order.
    pub(super) fn inserts<'a>(&self, messages: &[&'a NewMessage]) -> Vec<&'a NewMessage> {
        self.inserts.iter().map(|&i| messages[i]).collect()
    }

    /// Each message's outcome, given the ids of the inserted rows (`None`
    /// if they are not one per insert).
    pub(super) fn outcomes(&self, ids: &[MessageId]) -> Option<Vec<Ingested>> {
        if ids.len() != self.inserts.len() {
            return None;
        }
        self.fates
            .iter()
            .map(|fate| match *fate {
                Fate::Insert(k) => ids.get(k).copied().map(Ingested::Stored),
                Fate::Earlier(id) => Some(Ingested::Duplicate(id)),
                Fate::InRun(k) => ids.get(k).copied().map(Ingested::Duplicate),
            })
            .collect()
    }
}

fn same_sender_and_control_id(a: &NewMessage, b: &NewMessage) -> bool {
    a.route == b.route && a.dedup_key == b.dedup_key && a.meta.control_id == b.meta.control_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Meta;

    fn message(control_id: &str, at_ms: i64, since: Option<i64>) -> NewMessage {
        NewMessage {
            route: "adt".into(),
            received_at_ms: at_ms,
            peer_app: None,
            peer_addr: "127.0.0.1:1".into(),
            dedup_key: "eai".into(),
            dedup_since_ms: since,
            meta: Meta {
                control_id: control_id.into(),
                ..Meta::default()
            },
            body: Vec::new(),
            sealed: false,
        }
    }

    fn outcomes(
        messages: &[NewMessage],
        earlier: &[Option<MessageId>],
        ids: &[i64],
    ) -> Vec<Ingested> {
        let refs: Vec<&NewMessage> = messages.iter().collect();
        let plan = Plan::new(&refs, earlier);
        assert_eq!(plan.inserts(&refs).len(), ids.len());
        let ids: Vec<MessageId> = ids.iter().map(|&id| MessageId(id)).collect();
        plan.outcomes(&ids).unwrap()
    }

    #[test]
    fn repeats_in_the_run_point_at_the_first_stored_one() {
        let run = [
            message("A", 10, Some(0)),
            message("A", 10, Some(0)),
            message("B", 10, Some(0)),
            message("A", 10, Some(0)),
        ];
        let got = outcomes(&run, &[None; 4], &[100, 101]);
        use Ingested::*;
        let expected = vec![
            Stored(MessageId(100)),
            Duplicate(MessageId(100)),
            Stored(MessageId(101)),
            Duplicate(MessageId(100)),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn the_database_answer_wins_and_windows_are_per_message() {
        let run = [
            message("A", 10, Some(0)),  // repeats 7, stored before the run
            message("A", 20, Some(15)), // 7 is out of its window, the first A is not stored: stored
            message("A", 30, Some(25)), // the second A (received at 20) is out of its window: stored
            message("A", 30, Some(20)), // the second A is in its window
            message("A", 30, None),     // no window: stored
        ];
        let earlier = [Some(MessageId(7)), None, None, None, None];
        let got = outcomes(&run, &earlier, &[100, 101, 102]);
        use Ingested::*;
        let expected = vec![
            Duplicate(MessageId(7)),
            Stored(MessageId(100)),
            Stored(MessageId(101)),
            Duplicate(MessageId(100)),
            Stored(MessageId(102)),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn missing_ids_are_no_outcome() {
        let run = [message("A", 10, None)];
        let refs: Vec<&NewMessage> = run.iter().collect();
        assert_eq!(Plan::new(&refs, &[None]).outcomes(&[]), None);
    }
}
