//! The Backtest controller (talks to the API server): find the digest to test, create the Job,
//! copy its result into the status, tell phase changes as events.

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::job::{DIGEST_ANNOTATION, Target, desired_job, job_name};
use super::resource::{Backtest, BacktestStatus};
use super::status::{
    JobState, job_state, observed_status, pending_status, phase_event, terminated,
};
use crate::digest::pinner::ImagePinner;
use crate::digest::reference::{Digest, ImageReference, digest_of};
use crate::error::{Error, Result};
use crate::reconcile::report::{apply_status, kube_event};
use crate::resource::{LocalSecretReference, SecretKeyReference, TradingAgent};

/// How soon a Pending Backtest looks again (a TradingAgent not pinned yet, a registry down).
pub const PENDING_RETRY: Duration = Duration::from_secs(10);
/// The label selector of the Jobs the controller makes.
pub const JOB_SELECTOR: &str =
    "app.kubernetes.io/component=backtest,app.kubernetes.io/managed-by=trading-agent-operator";

/// What every Backtest reconciliation shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Resolves an image's tag to a digest (the TradingAgents' pinner).
    pub pinner: Arc<dyn ImagePinner>,
    /// Who publishes events.
    pub reporter: Reporter,
}

/// What a Backtest runs on, owned.
struct Resolved {
    image: String,
    digest: String,
    database: SecretKeyReference,
    pull_secrets: Vec<LocalSecretReference>,
}

/// Run the Backtest controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    pinner: Arc<dyn ImagePinner>,
    reporter: Reporter,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (backtests, jobs): (Api<Backtest>, Api<Job>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let context = Arc::new(Context {
        client,
        pinner,
        reporter,
    });
    info!(
        namespace = namespace.unwrap_or("<all>"),
        "starting the Backtest controller"
    );
    Controller::new(backtests, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(JOB_SELECTOR))
        .with_config(ControllerConfig::default().concurrency(4))
        .graceful_shutdown_on(shutdown)
        .run(
            |backtest, ctx| crate::reconcile::controller::caught(reconcile(backtest, ctx)),
            error_policy,
            context,
        )
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(%object, "backtest reconciled"),
                Err(error) => debug!(%error, "backtest reconcile did not complete"),
            }
        })
        .await;
    info!("Backtest controller stopped");
}

fn error_policy(backtest: Arc<Backtest>, error: &Error, _: Arc<Context>) -> Action {
    warn!(backtest = %backtest.name_any(), %error, "backtest reconciliation failed");
    Action::requeue(PENDING_RETRY)
}

/// One Backtest: nothing once it has finished; else create its Job, or read it.
pub async fn reconcile(backtest: Arc<Backtest>, ctx: Arc<Context>) -> Result<Action> {
    let current = backtest.status.as_ref();
    if current.and_then(|s| s.phase).is_some_and(|p| p.is_final()) {
        return Ok(Action::await_change());
    }
    let ns = backtest
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = job_name(&backtest.name_any());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = match jobs.get_opt(&name).await? {
        Some(job) => job,
        None if current.and_then(|s| s.job_name.as_ref()).is_some() => {
            // The Job ran and is gone before its result was read (deleted by hand).
            let mut status = pending_status(current, String::new());
            status.phase = Some(super::resource::BacktestPhase::Failed);
            status.message = Some(format!(
                "Job {name} was deleted before it finished; create a new Backtest to run again"
            ));
            write(&ctx, &backtest, &ns, status).await?;
            return Ok(Action::await_change());
        }
        None => match resolve(&ctx, &backtest, &ns).await {
            Ok(resolved) => {
                let target = Target {
                    image: resolved.image.clone(),
                    digest: resolved.digest.clone(),
                    database: &resolved.database,
                    pull_secrets: &resolved.pull_secrets,
                };
                let job = desired_job(&backtest, &target)?;
                match jobs.create(&PostParams::default(), &job).await {
                    Ok(created) => created,
                    Err(kube::Error::Api(e)) if e.code == 409 => jobs.get(&name).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(waiting) => {
                let status = pending_status(current, waiting);
                write(&ctx, &backtest, &ns, status).await?;
                return Ok(Action::requeue(PENDING_RETRY));
            }
        },
    };
    // The Job's own image and digest are the truth: resolved once, when it was created.
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let digest = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DIGEST_ANNOTATION).cloned())
        .or_else(|| digest_of(&image).map(|d| d.as_str().to_owned()))
        .unwrap_or_default();
    let state = job_state(&job);
    let ended = match state {
        JobState::Running { .. } => None,
        _ => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            let list = pods
                .list(
                    &ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")),
                )
                .await?;
            terminated(&list.items)
        }
    };
    let status = observed_status(current, &name, &image, &digest, &state, ended.as_ref());
    write(&ctx, &backtest, &ns, status).await?;
    Ok(Action::await_change())
}

/// The pinned image, database and pull secrets to run on; `Err` says what is awaited.
async fn resolve(
    ctx: &Context,
    backtest: &Backtest,
    ns: &str,
) -> std::result::Result<Resolved, String> {
    let spec = &backtest.spec;
    if let Some(reference) = &spec.trading_agent_ref {
        let agents: Api<TradingAgent> = Api::namespaced(ctx.client.clone(), ns);
        let agent = agents
            .get_opt(&reference.name)
            .await
            .map_err(|e| format!("TradingAgent {} could not be read: {e}", reference.name))?
            .ok_or_else(|| format!("TradingAgent {} not found", reference.name))?;
        let pinned = agent.status.as_ref().and_then(|s| s.image.as_ref());
        let (Some(written), Some(digest)) = (
            pinned.map(|i| i.reference.clone()),
            pinned.and_then(|i| i.digest.clone()),
        ) else {
            return Err(format!(
                "TradingAgent {} has no pinned digest yet",
                reference.name
            ));
        };
        let digest = Digest::parse(&digest).map_err(|e| e.to_string())?;
        let image = ImageReference::parse(&written)
            .map_err(|e| format!("TradingAgent {}: {e}", reference.name))?
            .pinned_to(digest.clone());
        return Ok(Resolved {
            image: image.image(),
            digest: digest.as_str().to_owned(),
            database: agent.spec.database.secret_ref.clone(),
            pull_secrets: agent.spec.image_pull_secrets.clone(),
        });
    }
    let (Some(image), Some(database)) = (&spec.image, &spec.database) else {
        // Admission refuses this; a resource from before the rules still gets a clear answer.
        return Err("name tradingAgentRef, or image with database".to_owned());
    };
    // The TradingAgents' pinner, for a stand-in agent with the image and pull secrets: the same
    // resolver, cache and credentials, resolved once (`Pin`).
    let stand_in: TradingAgent = serde_json::from_value(serde_json::json!({
        "apiVersion": "tradingagents.dev/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": backtest.name_any(), "namespace": ns},
        "spec": {
            "image": image,
            "imagePullSecrets": spec.image_pull_secrets,
            "imageUpdate": {"mode": "Pin", "interval": "0s"},
            "database": {"secretRef": database.secret_ref},
        },
    }))
    .map_err(|e| e.to_string())?;
    let outcome = ctx.pinner.pin(&stand_in).await.outcome;
    let Some(pinned) = outcome.pinned() else {
        let problem = outcome
            .problem()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(format!(
            "image {image} is not resolved to a digest: {problem}"
        ));
    };
    Ok(Resolved {
        image: pinned.image(),
        digest: pinned.digest().as_str().to_owned(),
        database: database.secret_ref.clone(),
        pull_secrets: spec.image_pull_secrets.clone(),
    })
}

/// Write the status when it changed, and tell a phase change as an event.
async fn write(ctx: &Context, backtest: &Backtest, ns: &str, status: BacktestStatus) -> Result<()> {
    if backtest.status.as_ref() == Some(&status) {
        return Ok(());
    }
    apply_status(&ctx.client, backtest, ns, &status).await?;
    if let Some(event) = phase_event(backtest.status.as_ref(), &status) {
        let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        let published = recorder
            .publish(
                &kube_event(
                    event.warning,
                    event.reason,
                    super::status::tail(&event.note, 1000),
                    "Backtest",
                    None,
                ),
                &backtest.object_ref(&()),
            )
            .await;
        if let Err(error) = published {
            // Best effort: the status says the same.
            warn!(%error, reason = event.reason, "could not publish event");
        }
    }
    Ok(())
}
