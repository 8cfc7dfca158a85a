//! The year's figures of a region, and who the caller is: what the console
//! (and the fund's own tools) read beside the settlement RPCs.

use tonic::{Request, Response, Status};

use super::{Api, answered, caller, checked, convert, pb};
use crate::{audit::Subject, statistics};

#[tonic::async_trait]
impl pb::statistics_service_server::StatisticsService for Api {
    async fn get_year_statistics(
        &self,
        request: Request<pb::GetYearStatisticsRequest>,
    ) -> Result<Response<pb::YearStatistics>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let (region, year) = checked(convert::region_year(&request.region_code, request.year))?;
        by.note.subject(Subject::Region(region));
        let counted = self.app.year_statistics(region, year, &by).await;
        answered(counted, |counted| {
            let figures = &counted.figures;
            pb::YearStatistics {
                region_code: region.to_string(),
                year: year.get(),
                total: Some(figures_message(&figures.total)),
                by_month: groups(&figures.by_month),
                by_class: groups(&figures.by_class),
                by_region: groups(&figures.by_region),
                by_hospital: groups(&figures.by_hospital),
                by_cost_band: groups(&figures.by_cost_band),
                by_disease_group: groups(&figures.by_disease_group),
                as_of: Some(convert::timestamp(counted.as_of)),
            }
        })
    }
}

#[tonic::async_trait]
impl pb::caller_service_server::CallerService for Api {
    async fn get_caller(
        &self,
        request: Request<pb::GetCallerRequest>,
    ) -> Result<Response<pb::Caller>, Status> {
        let by = caller(&request)?;
        Ok(Response::new(pb::Caller {
            name: by.principal.recorded_name(),
            role: by.role.as_str().to_owned(),
            hospital_id: by
                .hospital_id
                .as_ref()
                .map(|h| h.as_str().to_owned())
                .unwrap_or_default(),
            regions: by.regions.iter().map(ToString::to_string).collect(),
        }))
    }
}

fn figures_message(figures: &statistics::Figures) -> pb::Figures {
    pb::Figures {
        persons: figures.persons as i64,
        settlements: figures.settlements as i64,
        assistance_total: figures.assistance.to_string(),
        referrals: figures.referrals as i64,
        total_cost: figures.total_cost.to_string(),
    }
}

fn groups(groups: &[statistics::Group]) -> Vec<pb::FiguresGroup> {
    groups
        .iter()
        .map(|g| pb::FiguresGroup {
            key: g.key.clone(),
            label: g.label.clone(),
            figures: Some(figures_message(&g.figures)),
        })
        .collect()
}
