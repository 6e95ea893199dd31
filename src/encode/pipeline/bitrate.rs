//! Bitrate votes: the peers an encoder feeds vote their bandwidth estimates, and the
//! encoder's target follows the slowest within its tier's range. Pure arithmetic.

use std::collections::HashMap;

/// The votes of one encoder's viewers and the range they move its target in.
#[derive(Debug, Clone, Default)]
pub(super) struct BitrateVotes {
    /// The configured bitrate: the tier's ceiling (the next higher rung; the top rung for
    /// the top tier). Votes can only lower the target below it.
    ceiling: u32,
    /// Votes cannot take the target below this (just under the tier's rung: a slower
    /// viewer belongs on a lower tier, not here).
    floor: u32,
    /// Bandwidth estimates, by voter.
    votes: HashMap<u64, u32>,
}

impl BitrateVotes {
    /// No votes yet: the target is `ceiling`. `floor` is kept at or under it.
    pub(super) fn new(ceiling: u32, floor: u32) -> Self {
        BitrateVotes {
            ceiling,
            floor: floor.min(ceiling),
            votes: HashMap::new(),
        }
    }

    pub(super) fn set_ceiling(&mut self, ceiling: u32) {
        self.ceiling = ceiling;
    }

    /// `voter`'s estimate; `None` withdraws its vote.
    pub(super) fn vote(&mut self, voter: u64, estimate: Option<u32>) {
        match estimate {
            Some(bps) => self.votes.insert(voter, bps),
            None => self.votes.remove(&voter),
        };
    }

    /// The lowest vote, held between the floor and the ceiling; the ceiling without votes.
    pub(super) fn target(&self) -> u32 {
        let floor = self.floor.min(self.ceiling);
        self.votes
            .values()
            .min()
            .map_or(self.ceiling, |&v| v.clamp(floor, self.ceiling))
    }

    pub(super) fn ceiling(&self) -> u32 {
        self.ceiling
    }

    pub(super) fn floor(&self) -> u32 {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_lowest_vote_within_floor_and_ceiling() {
        let mut votes = BitrateVotes::new(1_500_000, 1_350_000);
        assert_eq!(votes.target(), 1_500_000, "no votes: the ceiling");
        votes.vote(1, Some(2_000_000));
        assert_eq!(votes.target(), 1_500_000, "capped at the ceiling");
        votes.vote(2, Some(1_400_000));
        assert_eq!(votes.target(), 1_400_000, "the slowest viewer");
        votes.vote(3, Some(300_000));
        assert_eq!(votes.target(), 1_350_000, "held at the floor");
        votes.vote(3, None);
        votes.vote(2, None);
        assert_eq!(votes.target(), 1_500_000, "withdrawn");
    }

    #[test]
    fn a_lower_ceiling_lowers_the_floor_with_it() {
        let mut votes = BitrateVotes::new(700_000, 0);
        votes.vote(1, Some(300_000));
        assert_eq!(votes.target(), 300_000, "the lowest tier has no floor");
        assert_eq!(BitrateVotes::new(100, 500).floor(), 100);
        let mut votes = BitrateVotes::new(1_000_000, 900_000);
        votes.set_ceiling(500_000);
        votes.vote(1, Some(100_000));
        assert_eq!(votes.target(), 500_000);
        assert_eq!((votes.floor(), votes.ceiling()), (900_000, 500_000));
    }
}
