//! From what the Job and its pod report to the Backtest's status, and the events a phase change
//! tells. Pure.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;

use super::job::CONTAINER;
use super::resource::{BacktestPhase, BacktestResult, BacktestStatus};

/// Longest message kept in the status (the termination message of a failure is up to 4 KiB of
/// log lines; the end of it says what went wrong).
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Where a Job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Not finished.
    Running { started: Option<Time> },
    /// Its pod exited 0.
    Complete {
        started: Option<Time>,
        finished: Option<Time>,
    },
    /// Its pod failed, or it ran past its deadline.
    Failed {
        started: Option<Time>,
        finished: Option<Time>,
        reason: String,
        message: String,
    },
}

/// The Job's state from its `Complete`/`Failed` conditions.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let started = status.start_time.clone();
    let conditions = status.conditions.unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        return JobState::Complete {
            started,
            finished: status
                .completion_time
                .or_else(|| holds("Complete").and_then(|c| c.last_transition_time.clone())),
        };
    }
    if let Some(failed) = holds("Failed") {
        return JobState::Failed {
            started,
            finished: failed.last_transition_time.clone(),
            reason: failed.reason.clone().unwrap_or_else(|| "Failed".to_owned()),
            message: failed.message.clone().unwrap_or_default(),
        };
    }
    JobState::Running { started }
}

/// How the backtest container of a finished pod ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    /// The container's exit code.
    pub exit_code: i32,
    /// Its termination message: the summary, or the last log lines of a failure.
    pub message: Option<String>,
}

/// The terminated backtest container among the Job's pods (the last one to finish).
pub fn terminated(pods: &[Pod]) -> Option<Terminated> {
    pods.iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let container = statuses.iter().find(|c| c.name == CONTAINER)?;
            let done = container.state.as_ref()?.terminated.as_ref()?;
            Some((done.finished_at.clone(), done))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, done)| Terminated {
            exit_code: done.exit_code,
            message: done.message.clone(),
        })
}

/// The CLI's `--summary-file` JSON (`trading-agent backtest`, `ShortSummary`).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ShortSummary {
    closed_trades: u64,
    open_trades: u64,
    wins: u64,
    losses: u64,
    win_rate: Option<f64>,
    profit: String,
    profit_ratio: f64,
    currency: String,
    max_drawdown: f64,
    profit_factor: Option<f64>,
    final_equity: String,
    candles: u64,
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status result from the CLI's summary (the container's termination message).
pub fn parse_summary(message: &str) -> Result<BacktestResult, String> {
    let summary: ShortSummary = serde_json::from_str(message.trim())
        .map_err(|e| format!("the summary is not the backtest CLI's JSON: {e}"))?;
    let finite = |name: &str, v: f64| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("the summary's {name} is not a number"))
        }
    };
    Ok(BacktestResult {
        trades: count(summary.closed_trades),
        open_trades: count(summary.open_trades),
        wins: count(summary.wins),
        losses: count(summary.losses),
        profit: summary.profit,
        currency: summary.currency,
        profit_percent: percent(finite("profitRatio", summary.profit_ratio)?),
        max_drawdown: percent(finite("maxDrawdown", summary.max_drawdown)?),
        win_rate: summary.win_rate.filter(|v| v.is_finite()).map(percent),
        profit_factor: summary
            .profit_factor
            .filter(|v| v.is_finite())
            .map(|v| format!("{v:.3}")),
        final_equity: summary.final_equity,
        candles: count(summary.candles),
    })
}

/// The last `max` characters of `text` (the end of a log says what failed), on a character
/// boundary.
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - max + 1).collect();
    format!("…{tail}")
}

/// The status once the Job named `job_name` exists in `state`, its pod ended as `ended` (if it
/// did), running `image` at `digest`.
pub fn observed_status(
    current: Option<&BacktestStatus>,
    job_name: &str,
    image: &str,
    digest: &str,
    state: &JobState,
    ended: Option<&Terminated>,
) -> BacktestStatus {
    let mut status = BacktestStatus {
        phase: None,
        message: None,
        image: Some(image.to_owned()),
        digest: Some(digest.to_owned()),
        short_digest: Some(short(digest)),
        job_name: Some(job_name.to_owned()),
        start_time: current.and_then(|c| c.start_time.clone()),
        completion_time: None,
        result: None,
    };
    match state {
        JobState::Running { started } => {
            status.phase = Some(BacktestPhase::Running);
            status.start_time = started.clone().or(status.start_time);
            status.message = Some(format!("Job {job_name} runs the backtest"));
        }
        JobState::Complete { started, finished } => {
            status.start_time = started.clone().or(status.start_time);
            status.completion_time = finished.clone();
            match ended.and_then(|e| e.message.as_deref()) {
                Some(message) => match parse_summary(message) {
                    Ok(result) => {
                        status.phase = Some(BacktestPhase::Succeeded);
                        status.message = Some(format!(
                            "{} trades, profit {} {} ({}), max drawdown {}",
                            result.trades,
                            result.profit,
                            result.currency,
                            result.profit_percent,
                            result.max_drawdown
                        ));
                        status.result = Some(result);
                    }
                    Err(problem) => {
                        status.phase = Some(BacktestPhase::Failed);
                        status.message = Some(tail(&problem, MAX_MESSAGE_CHARS));
                    }
                },
                None => {
                    status.phase = Some(BacktestPhase::Failed);
                    status.message = Some(format!(
                        "Job {job_name} completed, but its pod and summary are gone (deleted before the operator read them)"
                    ));
                }
            }
        }
        JobState::Failed {
            started,
            finished,
            reason,
            message,
        } => {
            status.phase = Some(BacktestPhase::Failed);
            status.start_time = started.clone().or(status.start_time);
            status.completion_time = finished.clone();
            let detail = match ended {
                Some(Terminated {
                    exit_code,
                    message: Some(log),
                }) if !log.trim().is_empty() => format!("exit code {exit_code}: {}", log.trim()),
                Some(Terminated { exit_code, .. }) => format!("exit code {exit_code}"),
                None => message.clone(),
            };
            status.message = Some(tail(
                &format!("Job {job_name} failed ({reason}): {detail}"),
                MAX_MESSAGE_CHARS,
            ));
        }
    }
    status
}

/// The status while no Job runs yet: Pending, and why.
pub fn pending_status(current: Option<&BacktestStatus>, message: String) -> BacktestStatus {
    BacktestStatus {
        phase: Some(BacktestPhase::Pending),
        message: Some(tail(&message, MAX_MESSAGE_CHARS)),
        ..current.cloned().unwrap_or_default()
    }
}

/// `sha256:` and the first 12 hex digits.
pub fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// An event to publish about a Backtest.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseEvent {
    /// Warning or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened.
    pub note: String,
}

/// The event a change from `before` to `after` tells, if the phase moved (or a Pending reason
/// changed: a different thing is awaited).
pub fn phase_event(before: Option<&BacktestStatus>, after: &BacktestStatus) -> Option<PhaseEvent> {
    let old = before.and_then(|b| b.phase);
    let new = after.phase?;
    let message = after.message.clone().unwrap_or_default();
    if old == Some(new)
        && (new != BacktestPhase::Pending
            || before.and_then(|b| b.message.as_ref()) == after.message.as_ref())
    {
        return None;
    }
    Some(match new {
        BacktestPhase::Pending => PhaseEvent {
            warning: true,
            reason: "Waiting",
            note: message,
        },
        BacktestPhase::Running => PhaseEvent {
            warning: false,
            reason: "Started",
            note: format!(
                "Job {} runs {}",
                after.job_name.as_deref().unwrap_or("?"),
                after.image.as_deref().unwrap_or("?")
            ),
        },
        BacktestPhase::Succeeded => PhaseEvent {
            warning: false,
            reason: "Succeeded",
            note: format!(
                "{message} on {}",
                after.short_digest.as_deref().unwrap_or("?")
            ),
        },
        BacktestPhase::Failed => PhaseEvent {
            warning: true,
            reason: "Failed",
            note: message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use serde_json::json;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const IMAGE: &str = "registry.example.com/acme/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SUMMARY: &str = r#"{"closedTrades":12,"openTrades":1,"wins":5,"losses":7,"winRate":0.4166666,"profit":"-31.5","profitRatio":-0.00315,"currency":"USDT","maxDrawdown":0.0123456,"profitFactor":0.81234,"finalEquity":"9968.5","candles":26000,"steps":25900}"#;

    fn time(s: &str) -> Time {
        serde_json::from_value(json!(s)).unwrap()
    }

    fn job(conditions: &[(&str, &str)]) -> Job {
        Job {
            status: Some(JobStatus {
                start_time: Some(time("2026-11-27T23:00:00Z")),
                completion_time: conditions
                    .iter()
                    .any(|(t, _)| *t == "Complete")
                    .then(|| time("2026-11-27T23:00:09Z")),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(type_, reason)| JobCondition {
                            type_: (*type_).to_owned(),
                            status: "True".to_owned(),
                            reason: Some((*reason).to_owned()),
                            message: Some("Job has reached the specified backoff limit".into()),
                            last_transition_time: Some(time("2026-11-27T23:00:09Z")),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    fn pod(exit_code: i32, message: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "status": {"containerStatuses": [{
                "name": "backtest", "image": IMAGE, "imageID": IMAGE, "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code, "message": message,
                    "finishedAt": "2026-11-27T23:00:08Z"}},
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn job_states_from_conditions() {
        assert!(matches!(job_state(&job(&[])), JobState::Running { .. }));
        assert!(matches!(
            job_state(&job(&[("SuccessCriteriaMet", ""), ("Complete", "")])),
            JobState::Complete { .. }
        ));
        match job_state(&job(&[
            ("FailureTarget", ""),
            ("Failed", "DeadlineExceeded"),
        ])) {
            JobState::Failed { reason, .. } => assert_eq!(reason, "DeadlineExceeded"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            job_state(&Job::default()),
            JobState::Running { started: None }
        ));
    }

    #[test]
    fn a_completed_job_puts_the_summary_in_the_status() {
        let ended = terminated(&[pod(0, Some(SUMMARY))]).unwrap();
        let state = job_state(&job(&[("Complete", "")]));
        let status = observed_status(None, "backtest-q1", IMAGE, DIGEST, &state, Some(&ended));
        assert_eq!(status.phase, Some(BacktestPhase::Succeeded));
        let result = status.result.clone().unwrap();
        assert_eq!(
            (
                result.trades,
                result.open_trades,
                result.wins,
                result.losses
            ),
            (12, 1, 5, 7)
        );
        assert_eq!(result.profit, "-31.5");
        assert_eq!(result.profit_percent, "-0.32%");
        assert_eq!(result.max_drawdown, "1.23%");
        assert_eq!(result.win_rate.as_deref(), Some("41.67%"));
        assert_eq!(result.profit_factor.as_deref(), Some("0.812"));
        assert_eq!(result.candles, 26000);
        assert_eq!(status.digest.as_deref(), Some(DIGEST));
        assert_eq!(status.short_digest.as_deref(), Some("sha256:0123456789ab"));
        assert_eq!(status.start_time, Some(time("2026-11-27T23:00:00Z")));
        assert_eq!(status.completion_time, Some(time("2026-11-27T23:00:09Z")));
        let event = phase_event(None, &status).unwrap();
        assert_eq!((event.warning, event.reason), (false, "Succeeded"));
        assert!(event.note.contains("12 trades"), "{}", event.note);
    }

    #[test]
    fn a_failed_job_says_why_from_the_pods_last_log_lines() {
        let ended = terminated(&[pod(
            1,
            Some("error: symbols: unknown instrument `DOGEUSDT`\n"),
        )]);
        let state = job_state(&job(&[("Failed", "BackoffLimitExceeded")]));
        let status = observed_status(None, "backtest-q1", IMAGE, DIGEST, &state, ended.as_ref());
        assert_eq!(status.phase, Some(BacktestPhase::Failed));
        let message = status.message.clone().unwrap();
        assert!(message.contains("BackoffLimitExceeded"), "{message}");
        assert!(
            message.contains("exit code 1: error: symbols: unknown instrument"),
            "{message}"
        );
        assert!(status.result.is_none());
        let event = phase_event(None, &status).unwrap();
        assert_eq!((event.warning, event.reason), (true, "Failed"));
        // A deadline: no pod verdict, the Job's own message.
        let deadline = job_state(&job(&[("Failed", "DeadlineExceeded")]));
        let status = observed_status(None, "backtest-q1", IMAGE, DIGEST, &deadline, None);
        assert!(status.message.unwrap().contains("DeadlineExceeded"));
    }

    #[test]
    fn an_unreadable_or_missing_summary_is_a_failure_not_a_made_up_result() {
        let state = job_state(&job(&[("Complete", "")]));
        let garbage = terminated(&[pod(0, Some("not json"))]);
        let status = observed_status(None, "j", IMAGE, DIGEST, &state, garbage.as_ref());
        assert_eq!(status.phase, Some(BacktestPhase::Failed));
        assert!(
            status
                .message
                .unwrap()
                .contains("not the backtest CLI's JSON")
        );
        let gone = observed_status(None, "j", IMAGE, DIGEST, &state, None);
        assert_eq!(gone.phase, Some(BacktestPhase::Failed));
        assert!(gone.result.is_none());
    }

    #[test]
    fn running_then_no_repeated_events() {
        let running = observed_status(None, "j", IMAGE, DIGEST, &job_state(&job(&[])), None);
        assert_eq!(running.phase, Some(BacktestPhase::Running));
        let event = phase_event(None, &running).unwrap();
        assert_eq!(event.reason, "Started");
        assert!(event.note.contains(IMAGE));
        assert_eq!(phase_event(Some(&running), &running), None);
        let waiting = pending_status(None, "TradingAgent alpha has no pinned digest yet".into());
        assert_eq!(phase_event(None, &waiting).unwrap().reason, "Waiting");
        assert_eq!(phase_event(Some(&waiting), &waiting), None);
        let other = pending_status(Some(&waiting), "TradingAgent alpha not found".into());
        assert!(phase_event(Some(&waiting), &other).is_some());
    }

    #[test]
    fn long_failure_logs_keep_their_end() {
        let log = format!("{}the real error", "x".repeat(5000));
        let kept = tail(&log, MAX_MESSAGE_CHARS);
        assert_eq!(kept.chars().count(), MAX_MESSAGE_CHARS);
        assert!(kept.ends_with("the real error"));
        assert_eq!(tail("short", 10), "short");
    }
}
