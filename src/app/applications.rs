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
    domain::{Application, Claim, ClaimKey, Reason, Settlement, SettlementId},
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
            top_up: None,
        };
        let recorded = self
            .ledger
            .settle(claim, assessing, Some(application), by.origin.clone())
            .await?;
        if !recorded.replayed {
            self.metrics.application("submitted");
            audit_settlement("submit_application", &recorded.settlement, by);
        }
        Ok(recorded)
    }

    /// Opens a top-up application of the window settlement `window` (role
    /// caseworker), typically a retroactive candidate: the stay worked out
    /// on the roster as it is now, owing what the window did not pay. Its
    /// patient must be enrolled in the caller's regions now (as the
    /// candidates are listed: the window may have settled them as not
    /// enrolled); any other settlement is answered as missing.
    pub async fn open_application(
        &self,
        window: SettlementId,
        documents: Reason,
        by: &Caller,
    ) -> Result<Recorded, AppError> {
        authorize(by, Action::SubmitApplication)?;
        let missing = || AppError::NotFound(format!("no settlement {window}"));
        let read = self.store.settlement(window)?.ok_or_else(missing)?;
        let settlement = self.ledger.durable(read).await?;
        if self
            .find_person_for(settlement.claim.patient_id(), by)
            .await?
            .is_none()
        {
            return Err(missing());
        }
        let assessing = match self.store.shared() {
            true => Assessing::InBatch(self.policies.load_full()),
            false => Assessing::Done(Box::new(self.assess(&settlement.claim).await?)),
        };
        let application = Application {
            documents,
            submitted_by: by.id.clone(),
            approval: None,
            closing: None,
            top_up: None,
        };
        let patient_year = (
            settlement.claim.patient_id().clone(),
            settlement.claim.year(),
        );
        let recorded = self
            .ledger
            .top_up(
                settlement.claim.key().clone(),
                patient_year,
                assessing,
                application,
                by.origin.clone(),
            )
            .await?;
        if !recorded.replayed {
            self.metrics.application("opened");
            audit_settlement("open_application", &recorded.settlement, by);
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
        let (action, event) = match &change {
            Change::Approve(_) => ("approve_application", "approved"),
            Change::Reject(_) => ("reject_application", "rejected"),
            Change::Withdraw(_) => ("withdraw_application", "withdrawn"),
            Change::Reverse(_) => ("reverse", "reversed"),
        };
        let recorded = self.ledger.change(key, change, by.origin.clone()).await?;
        if !recorded.replayed {
            self.metrics.application(event);
            audit_settlement(action, &recorded.settlement, by);
        }
        Ok(recorded)
    }
}
