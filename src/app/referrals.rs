//! Referral to temporary assistance (三(一)2 last paragraph, 三(一)3 摆渡机制,
//! 早发现、早介入): the list of settled claims whose patients still cannot
//! pay, for the offices that act on them. The rule itself is pure
//! ([`crate::rules::referral`]); the ledger decides it once, when settling.

use super::{App, AppError, SettlementPage};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{BusinessDay, RegionCode, SettlementId},
};

impl App {
    /// A page of the referred settlements that are not reversed, of
    /// `region` (a city takes in its counties), settled on the business
    /// days `from..=to`, oldest first; of a caller limited to regions, only
    /// those listed in them (a page may then hold fewer than asked).
    pub async fn list_referrals(
        &self,
        region: RegionCode,
        from: BusinessDay,
        to: BusinessDay,
        page_size: usize,
        after: Option<SettlementId>,
        by: &Caller,
    ) -> Result<SettlementPage, AppError> {
        authorize(by, Action::ListReferrals)?;
        let limit = self.page_limit(page_size);
        let reads = self.store.referrals(region, from..=to, after, limit + 1)?;
        let more = reads.len() > limit;
        let mut settlements = Vec::with_capacity(reads.len().min(limit));
        for read in reads.into_iter().take(limit) {
            settlements.push(self.ledger.durable(read).await?);
        }
        let next_after = more.then(|| settlements.last().map(|s| s.id)).flatten();
        settlements.retain(|s| by.sees_settlement(s));
        Ok(SettlementPage {
            settlements,
            next_after,
        })
    }
}
