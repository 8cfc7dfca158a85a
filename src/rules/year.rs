//! A claim worked out on its year: the class chosen, the deductible, the
//! ratio bands, the cap and its outpatient sub-cap, tilted assistance, and
//! the explanation a clerk reads (计算描述).
//!
//! The ledger calls [`apply_year`] in commit order with the patient-year's
//! running total as the commits before left it, so two claims of one patient
//! see each other's deductible, band position and cap exactly as they see
//! each other's cap.

use rust_decimal::Decimal;

use super::{Assessment, CapTerms};
use crate::domain::{
    BandLine, Breakdown, CapState, Claim, ClaimKind, ClassTerms, Consumed, Exact, IneligibleReason,
    Money, Outcome, Usage,
};

/// Works out what the claim pays given the year's running total before it:
/// under each class the patient qualifies in, keeping the most favourable
/// (the most assistance; then the least deductible consumed; then the
/// policy's order), with its breakdown and explanation.
pub fn apply_year(claim: &Claim, assessment: &Assessment, usage: &Usage) -> Outcome {
    let oop = assessment.in_scope_out_of_pocket;
    let Some(terms) = &assessment.cap else {
        let explanation = "不在救助对象名册，医疗救助不予支付".to_owned();
        return outcome(
            claim,
            assessment,
            None,
            Money::ZERO,
            false,
            nothing(explanation),
        );
    };
    let best = assessment
        .classes
        .iter()
        .map(|class| work(claim.kind(), oop, class, terms, usage))
        .reduce(|best, next| {
            let better = next.assistance() > best.assistance()
                || (next.assistance() == best.assistance()
                    && next.consumed.deductible < best.consumed.deductible);
            if better { next } else { best }
        });
    let Some(worked) = best else {
        let cap = cap_state(terms, terms.annual_cap, usage.used, Money::ZERO);
        let explanation = match assessment.ineligible_reason {
            Some(IneligibleReason::NoQualifyingCategory) => {
                "救助对象类别须有重大疾病、因病致瘫、80周岁以上、未成年或一二级精神残疾之一，\
                 本次均不符合，医疗救助不予支付"
            }
            _ => "住院或就诊期间不在本政策的救助对象类别之内，医疗救助不予支付",
        };
        return outcome(
            claim,
            assessment,
            Some(cap),
            Money::ZERO,
            false,
            nothing(explanation.into()),
        );
    };
    let cap = cap_state(terms, worked.cap, usage.used, worked.consumed.cap_charged);
    let assistance = worked.assistance();
    let capped = worked.capped;
    let breakdown = worked.into_breakdown(claim.kind(), oop, terms, usage);
    outcome(claim, assessment, Some(cap), assistance, capped, breakdown)
}

fn outcome(
    claim: &Claim,
    assessment: &Assessment,
    cap: Option<CapState>,
    assistance: Money,
    capped: bool,
    breakdown: Breakdown,
) -> Outcome {
    // The insurances paid within the in-scope cost and assistance stays
    // within the out-of-pocket part of it, so this never goes below zero.
    let patient_pays = claim
        .total_cost()
        .saturating_sub(claim.insurance_paid())
        .saturating_sub(assistance);
    Outcome {
        eligible: assessment.eligible,
        categories: assessment.categories.clone(),
        ineligible_reason: assessment.ineligible_reason,
        in_scope_out_of_pocket: assessment.in_scope_out_of_pocket,
        assistance,
        patient_pays,
        capped,
        cap,
        breakdown: Some(breakdown),
    }
}

fn cap_state(terms: &CapTerms, cap: Money, used_before: Money, charged: Money) -> CapState {
    CapState {
        region: terms.region,
        policy_id: terms.policy_id.clone(),
        annual_cap: cap,
        used_before,
        remaining_after: cap.saturating_sub(used_before).saturating_sub(charged),
    }
}

/// The breakdown of a claim that pays nothing and consumes nothing.
fn nothing(explanation: String) -> Breakdown {
    Breakdown {
        class: None,
        deductible: Money::ZERO,
        deductible_before: Money::ZERO,
        base_before: Money::ZERO,
        bands: Vec::new(),
        computed: Money::ZERO,
        tilt_base: Money::ZERO,
        consumed: Consumed::default(),
        explanation,
    }
}

/// A claim worked out under one class.
struct Worked<'a> {
    class: &'a ClassTerms,
    bands: Vec<BandLine>,
    exact: Decimal,
    computed: Money,
    /// The annual cap that applied (the class's own, else the policy's).
    cap: Money,
    /// What was left of the cap, and of the outpatient sub-cap, before.
    left: Money,
    left_outpatient: Option<Money>,
    capped: bool,
    tilt_base: Money,
    consumed: Consumed,
}

impl Worked<'_> {
    fn assistance(&self) -> Money {
        // Both parts stay within the claim's out-of-pocket cost (see `work`).
        self.consumed
            .cap_charged
            .checked_add(self.consumed.tilt)
            .unwrap_or(Money::MAX)
    }
}

fn work<'a>(
    kind: ClaimKind,
    oop: Money,
    class: &'a ClassTerms,
    terms: &CapTerms,
    usage: &Usage,
) -> Worked<'a> {
    let deductible = class
        .deductible
        .saturating_sub(usage.deductible_used)
        .min(oop);
    let base = oop.saturating_sub(deductible);
    let bands = band_lines(class, usage.base, base);
    let exact: Decimal = bands.iter().map(|line| line.amount.0).sum();
    // Rounded once, up to the fen; a ratio of at most 1 keeps it within the base.
    let computed = Money::round_up(exact).map_or(base, |amount| amount.min(base));
    let cap = class.annual_cap.unwrap_or(terms.annual_cap);
    let left = cap.saturating_sub(usage.used);
    let left_outpatient = match (kind, terms.outpatient_cap) {
        (ClaimKind::OutpatientChronic, Some(sub)) => {
            Some(sub.saturating_sub(usage.outpatient_used))
        }
        _ => None,
    };
    let charged = computed
        .min(left)
        .min(left_outpatient.unwrap_or(Money::MAX));
    // What the patient still bears in scope after the cap charged.
    let burden = oop.saturating_sub(charged);
    let (tilt_base, tilt) = tilted(terms, left == charged, usage, burden);
    Worked {
        class,
        bands,
        exact,
        computed,
        cap,
        left,
        left_outpatient,
        capped: charged < computed,
        tilt_base,
        consumed: Consumed {
            deductible,
            base,
            cap_charged: charged,
            outpatient: if kind == ClaimKind::OutpatientChronic {
                charged
            } else {
                Money::ZERO
            },
            tilt,
            burden,
        },
    }
}

/// The bands `[position, position + base)` falls in on the year's
/// cumulative base, each with its exact amount.
fn band_lines(class: &ClassTerms, position: Money, base: Money) -> Vec<BandLine> {
    let end = position.checked_add(base).unwrap_or(Money::MAX);
    let mut lines = Vec::new();
    let mut from = Money::ZERO;
    for band in &class.bands {
        let up_to = band.up_to.unwrap_or(Money::MAX);
        let portion = end.min(up_to).saturating_sub(position.max(from));
        if portion > Money::ZERO {
            lines.push(BandLine {
                from,
                up_to: band.up_to,
                ratio: band.ratio,
                base: portion,
                amount: Exact(portion.as_decimal() * band.ratio.get()),
            });
        }
        from = up_to;
    }
    lines
}

/// Tilted assistance: once the annual cap is used up (`cap_used_up`), the
/// part of this claim's `burden` that lies beyond the threshold on the
/// year's remaining out-of-pocket cost, at the tilt's ratio, rounded up to
/// the fen once, within what is left of the tilt's own cap.
fn tilted(terms: &CapTerms, cap_used_up: bool, usage: &Usage, burden: Money) -> (Money, Money) {
    let Some(tilt) = terms.tilt.filter(|t| t.cap > Money::ZERO) else {
        return (Money::ZERO, Money::ZERO);
    };
    if !cap_used_up {
        return (Money::ZERO, Money::ZERO);
    }
    let end = usage.burden.checked_add(burden).unwrap_or(Money::MAX);
    let base = end.saturating_sub(usage.burden.max(tilt.threshold));
    let amount =
        Money::round_up(base.as_decimal() * tilt.ratio.get()).map_or(base, |a| a.min(base));
    let left = tilt.cap.saturating_sub(usage.tilt_used);
    (base, amount.min(left))
}

impl Worked<'_> {
    fn into_breakdown(
        self,
        kind: ClaimKind,
        oop: Money,
        terms: &CapTerms,
        usage: &Usage,
    ) -> Breakdown {
        let explanation = self.explain(kind, oop, terms, usage);
        Breakdown {
            class: Some(self.class.kind),
            deductible: self.class.deductible,
            deductible_before: usage.deductible_used,
            base_before: usage.base,
            bands: self.bands,
            computed: self.computed,
            tilt_base: self.tilt_base,
            consumed: self.consumed,
            explanation,
        }
    }

    /// The calculation in words (计算描述), such as
    /// `起付线 500.00 元；5000.00 × 70% = 3500.00；年度限额剩余 ...`.
    fn explain(&self, kind: ClaimKind, oop: Money, terms: &CapTerms, usage: &Usage) -> String {
        let c = &self.consumed;
        let mut parts = vec![
            format!(
                "救助类别 {}（{}）",
                self.class.kind.chinese(),
                kind.chinese()
            ),
            format!("政策范围内自付 {oop}"),
        ];
        let mut deductible = format!("起付线 {} 元", self.class.deductible);
        if usage.deductible_used > Money::ZERO {
            deductible.push_str(&format!("，年内已计 {}", usage.deductible_used));
        }
        if self.class.deductible > Money::ZERO {
            deductible.push_str(&format!("，本次计入 {}", c.deductible));
        }
        parts.push(deductible);
        for line in &self.bands {
            parts.push(format!(
                "{} × {} = {}",
                line.base,
                line.ratio.percent(),
                line.amount
            ));
        }
        if self.bands.is_empty() && c.base > Money::ZERO {
            parts.push(format!("{} 超出最高分段，不予支付", c.base));
        }
        let exact = Exact(self.exact);
        if exact.to_string() != self.computed.to_string() {
            parts.push(format!("合计 {exact}，向上取整到分为 {}", self.computed));
        } else if self.bands.len() > 1 {
            parts.push(format!("合计 {}", self.computed));
        }
        parts.push(format!(
            "年度限额 {}，此前已用 {}，剩余 {}{}",
            self.cap,
            usage.used,
            self.left,
            if self.capped && self.left_outpatient.is_none_or(|o| o >= self.left) {
                format!("，本次只付 {}", c.cap_charged)
            } else {
                String::new()
            }
        ));
        if let (Some(left), Some(sub)) = (self.left_outpatient, terms.outpatient_cap) {
            parts.push(format!(
                "门诊慢特病限额 {sub}，此前已用 {}，剩余 {left}{}",
                usage.outpatient_used,
                if self.capped && left < self.left {
                    format!("，本次只付 {}", c.cap_charged)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(tilt) = terms.tilt.filter(|_| self.tilt_base > Money::ZERO) {
            parts.push(format!(
                "倾斜救助：年内剩余自付超过 {} 的部分 {} × {}，倾斜限额剩余 {}，支付 {}",
                tilt.threshold,
                self.tilt_base,
                tilt.ratio.percent(),
                tilt.cap.saturating_sub(usage.tilt_used),
                c.tilt
            ));
        }
        parts.push(format!("医疗救助 {}", self.assistance()));
        parts.join("；")
    }
}
