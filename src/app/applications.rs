//! Assistance on application (依申请救助, 事后救助): a caseworker submits a
//! stay the window did not settle; the ledger works it out as if settled at
//! discharge and reserves it against the cap in commit order; a second
//! principal approves it (four eyes, checked by the ledger, which knows who
//! submitted) or rejects it, or it is withdrawn. An application is a
//! [`Settlement`] with an [`Application`], under the stay's claim key, so a
//! stay is settled once, at the window or on application.

use super::{App, AppError, audit_settlement};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{Application, Claim, ClaimKey, Reason, Settlement},
    ledger::{Assessing, Change, Recorded},
};

impl App {
    /// Submits `claim` on application (role caseworker), with where its
    /// `documents` are. The patient must be on the roster of the caller's
    /// regions; one who is not is answered as missing.
    pub async fn submit_application(
        &self,
        claim: Claim,
        documents: Reason,
        by: &Caller,
    ) -> Result<Recorded, AppError> {
        authorize(by, Action::SubmitApplication)?;
        self.read_person_for(claim.patient_id(), by).await?;
        let assessing = match self.store.shared() {
            true => Assessing::InBatch(self.policies.load_full()),
            false => Assessing::Done(Box::new(self.assess(&claim).await?)),
        };
        let application = Application {
            documents,
            submitted_by: by.id.clone(),
            approval: None,
            closing: None,
        };
        let recorded = self
            .ledger
            .settle(claim, assessing, Some(application), by.origin.clone())
            .await?;
        if !recorded.replayed {
            self.metrics.settled(&recorded.settlement.outcome);
            audit_settlement("submit_application", &recorded.settlement, by);
        }
        Ok(recorded)
    }

    /// Approves, rejects or withdraws the application under `key` (role
    /// caseworker): `change` is [`Change::Approve`], [`Change::Reject`] or
    /// [`Change::Withdraw`]. An application the caller may not see is
    /// answered as missing; a window settlement is refused.
    pub async fn decide_application(
        &self,
        key: ClaimKey,
        change: Change,
        by: &Caller,
    ) -> Result<Recorded, AppError> {
        authorize(by, Action::DecideApplication)?;
        let missing = || {
            AppError::NotFound(format!(
                "no application for claim {}/{}",
                key.hospital_id, key.claim_id
            ))
        };
        let read = self.store.settlement_by_claim(&key)?.ok_or_else(missing)?;
        let settlement: Settlement = self.ledger.durable(read).await?;
        if !by.sees_settlement(&settlement) {
            return Err(missing());
        }
        let action = match &change {
            Change::Approve(_) => "approve_application",
            Change::Reject(_) => "reject_application",
            Change::Withdraw(_) => "withdraw_application",
            Change::Reverse(_) => "reverse",
        };
        let recorded = self.ledger.change(key, change, by.origin.clone()).await?;
        if !recorded.replayed {
            audit_settlement(action, &recorded.settlement, by);
        }
        Ok(recorded)
    }
}
