//! Commands that ran but could not be recorded in migrate.drift: counted per
//! backend and written with the next row that can be (its unrecorded_before),
//! so a gap is never silent. Pure: the capture layer tells it what happened.
//!
//! A count follows the transactions it belongs to: commands of a transaction
//! that aborts never happened, and a row that carried earlier counts but
//! aborted gives them back to the next row.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gaps {
    /// Unrecorded commands of committed transactions not carried by any committed row.
    committed: u64,
    /// Unrecorded commands of the open transaction.
    in_transaction: u64,
    /// How much of `committed` a row of the open transaction carried.
    carried: u64,
}

impl Gaps {
    /// A command could not be recorded.
    pub fn missed(&mut self) {
        self.in_transaction += 1;
    }

    /// What the row about to be written carries. Call `written` once it is.
    pub fn pending(&self) -> u64 {
        self.committed - self.carried + self.in_transaction
    }

    /// A row was written carrying `pending()`.
    pub fn written(&mut self) {
        self.carried = self.committed;
        self.in_transaction = 0;
    }

    pub fn committed(&mut self) {
        self.committed = self.committed - self.carried + self.in_transaction;
        self.carried = 0;
        self.in_transaction = 0;
    }

    pub fn aborted(&mut self) {
        // The rows written in it vanished: what they carried of earlier
        // transactions is owed again; its own commands were undone.
        self.carried = 0;
        self.in_transaction = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_carried_by_the_next_row() {
        let mut gaps = Gaps::default();
        gaps.missed();
        assert_eq!(gaps.pending(), 1);
        gaps.written();
        assert_eq!(gaps.pending(), 0);
        gaps.committed();
        assert_eq!(gaps.pending(), 0);
    }

    #[test]
    fn a_miss_in_a_committed_transaction_waits_for_a_later_row() {
        let mut gaps = Gaps::default();
        gaps.missed();
        gaps.committed();
        assert_eq!(gaps.pending(), 1);
        gaps.missed();
        assert_eq!(gaps.pending(), 2);
        gaps.written();
        gaps.committed();
        assert_eq!(gaps.pending(), 0);
    }

    #[test]
    fn an_aborted_row_gives_back_what_it_carried() {
        let mut gaps = Gaps::default();
        gaps.missed();
        gaps.missed();
        gaps.committed();
        gaps.written(); // carries 2, then its transaction aborts
        assert_eq!(gaps.pending(), 0);
        gaps.aborted();
        assert_eq!(gaps.pending(), 2);
    }

    #[test]
    fn misses_of_an_aborted_transaction_never_happened() {
        let mut gaps = Gaps::default();
        gaps.missed();
        gaps.aborted();
        assert_eq!(gaps.pending(), 0);
    }

    #[test]
    fn two_rows_in_one_transaction_carry_a_miss_once() {
        let mut gaps = Gaps::default();
        gaps.missed();
        gaps.committed();
        gaps.written();
        assert_eq!(gaps.pending(), 0);
        gaps.missed();
        assert_eq!(gaps.pending(), 1);
        gaps.written();
        gaps.committed();
        assert_eq!(gaps.pending(), 0);
    }
}
