//! `GET /v1/jobs` (admin): what the queue is doing, for operators.

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};

use super::{extract::ApiQuery, AppState};
use crate::{
    catalog::{JobRecord, JOB_STATES},
    error::ApiError,
};

#[derive(Debug, Deserialize)]
pub struct JobsParams {
    state: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct JobList {
    items: Vec<JobJson>,
}

#[derive(Debug, Serialize)]
pub struct JobJson {
    #[serde(flatten)]
    job: JobRecord,
    updated_at: String,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<JobsParams>,
) -> Result<Json<JobList>, ApiError> {
    if let Some(s) = params.state.as_deref() {
        if !JOB_STATES.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "state must be one of {}",
                JOB_STATES.join(", ")
            )));
        }
    }
    let limit = super::files::page_limit(params.limit)?;
    let jobs = state
        .catalog
        .list_jobs(params.state.as_deref(), limit)
        .await?;
    let items = jobs
        .into_iter()
        .map(|job| JobJson {
            updated_at: super::files::rfc3339(job.updated_at),
            job,
        })
        .collect();
    Ok(Json(JobList { items }))
}
