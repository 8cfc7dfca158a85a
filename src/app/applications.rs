//! Assistance on application (依申请救助, 事后救助): a caseworker submits a
//! stay the window did not settle; the ledger works it out as if settled at
//! discharge and reserves it against the cap in commit order; a second
//! principal approves it (four eyes, checked by the ledger, which knows who
//! submitted) or rejects it, or it is withdrawn. An application is a
//! [`Settlement`] with an [`Application`], under the stay's claim key, so a
//! stay is settled once, at the window or on application. The caseworkers'
//! queue lists them by region, state and days of submission.

use super::{App, AppError, SettlementPage, audit_settlement, reconciliation::READ_PAGE};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{
        Application, ApplicationState, BusinessDay, Claim, ClaimKey, PaymentRef, Reason,
        RegionCode, Settlement, SettlementId,
    },
    ledger::{Assessing, Change, Recorded},
};

/// Settlements of the range one page of the application queue reads at
/// most, whatever it finds: the bound on one call's work.
pub const APPLICATION_QUEUE_READ_MAX: usize = 5_000;

/// What the application queue shows: a region, a state or all, a range of
/// submission days.
#[derive(Clone, Copy, Debug)]
pub struct QueueQuery {
    /// Patients enrolled there when the application was made.
    pub region: RegionCode,
    /// Only this state; `None` for all.
    pub state: Option<ApplicationState>,
    /// The first business day of submission, included.
    pub from: BusinessDay,
    /// The last, included.
    pub to: BusinessDay,
}

/// What a second principal (or, for a withdrawal, anyone of the role)
/// decides about a pending application: the ledger's [`Change`]s other than
/// a hospital's reversal, which this path must never make.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Pay it, under the fund's payment reference.
    Approve(PaymentRef),
    /// Refuse it.
    Reject(Reason),
    /// Take it back.
    Withdraw(Reason),
}

impl Decision {
    /// The log action and the metric's event.
    fn step(&self) -> (&'static str, &'static str) {
        match self {
            Decision::Approve(_) => ("approve_application", "approved"),
            Decision::Reject(_) => ("reject_application", "rejected"),
            Decision::Withdraw(_) => ("withdraw_application", "withdrawn"),
        }
    }
}

impl From<Decision> for Change {
    fn from(decision: Decision) -> Change {
        match decision {
            Decision::Approve(payment) => Change::Approve(payment),
            Decision::Reject(reason) => Change::Reject(reason),
            Decision::Withdraw(reason) => Change::Withdraw(reason),
        }
    }
}

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
        let (assessing, application) = self.application(&claim, documents, by).await?;
        let recorded = self
            .ledger
            .settle(claim, assessing, Some(application), by.origin.clone())
            .await?;
        Ok(self.stepped(recorded, ("submit_application", "submitted"), by))
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
        let claim = settlement.claim;
        let (assessing, application) = self.application(&claim, documents, by).await?;
        let patient_year = (claim.patient_id().clone(), claim.year());
        let recorded = self
            .ledger
            .top_up(
                claim.key().clone(),
                patient_year,
                assessing,
                application,
                by.origin.clone(),
            )
            .await?;
        Ok(self.stepped(recorded, ("open_application", "opened"), by))
    }

    /// Approves, rejects or withdraws the application under `key` (role
    /// caseworker). An application the caller may not see is answered as
    /// missing; a window settlement is refused.
    pub async fn decide_application(
        &self,
        key: ClaimKey,
        decision: Decision,
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
        let step = decision.step();
        let recorded = self
            .ledger
            .change(key, decision.into(), by.origin.clone())
            .await?;
        Ok(self.stepped(recorded, step, by))
    }

    /// How the ledger is to assess `claim` (in its batch on a shared store,
    /// here otherwise), and the new application of `by`.
    async fn application(
        &self,
        claim: &Claim,
        documents: Reason,
        by: &Caller,
    ) -> Result<(Assessing, Application), AppError> {
        let assessing = match self.store.shared() {
            true => Assessing::InBatch(self.policies.load_full()),
            false => Assessing::Done(Box::new(self.assess(claim).await?)),
        };
        let application = Application {
            documents,
            submitted_by: by.id.clone(),
            approval: None,
            closing: None,
            top_up: None,
        };
        Ok((assessing, application))
    }

    /// Counts and logs a step of an application the ledger recorded (a
    /// replay is neither).
    fn stepped(
        &self,
        recorded: Recorded,
        (action, event): (&'static str, &'static str),
        by: &Caller,
    ) -> Recorded {
        if !recorded.replayed {
            self.metrics.application(event);
            audit_settlement(action, &recorded.settlement, by);
        }
        recorded
    }

    /// A page of the applications submitted (or opened) on the days of
    /// `query` (roles caseworker and auditor), in settlement number order,
    /// after settlement `after`. A page reads at most
    /// [`APPLICATION_QUEUE_READ_MAX`] settlements of those days, so it may
    /// hold fewer applications than asked and still have a next page.
    pub async fn application_queue(
        &self,
        query: QueueQuery,
        page_size: usize,
        mut after: Option<SettlementId>,
        by: &Caller,
    ) -> Result<SettlementPage, AppError> {
        authorize(by, Action::ListApplications)?;
        let limit = self.page_limit(page_size);
        let mut found = Vec::new();
        let mut read = 0;
        loop {
            let page = super::reconciliation::read_page(
                &self.store,
                &self.ledger,
                None,
                query.from,
                query.to,
                after,
            )
            .await?;
            let end = page.len() < READ_PAGE;
            for settlement in page {
                read += 1;
                after = Some(settlement.id);
                let wanted = settlement
                    .application_state()
                    .is_some_and(|state| query.state.is_none_or(|wanted| wanted == state))
                    && (query.from..=query.to).contains(&settlement.settled_day)
                    && settlement.enrolled_in(query.region)
                    && by.sees_settlement(&settlement);
                if wanted {
                    found.push(settlement);
                    if found.len() == limit {
                        break;
                    }
                }
            }
            if end && found.len() < limit {
                return Ok(SettlementPage {
                    settlements: found,
                    next_after: None,
                });
            }
            if found.len() == limit || read >= APPLICATION_QUEUE_READ_MAX {
                return Ok(SettlementPage {
                    settlements: found,
                    next_after: after,
                });
            }
        }
    }
}
