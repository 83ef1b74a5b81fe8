//! The HTTP API: stateless, any number of replicas behind a load balancer.
//! poem-openapi generates `/openapi.json` and the docs at `/docs` from the
//! operations' types and doc comments.

pub mod auth;
pub mod error;
pub mod events;
pub mod health;
pub mod long_poll;
pub mod metrics;
pub mod models;
pub mod new_task;
pub mod queues;
pub mod schedules;
pub mod task_control;
pub mod task_types;
pub mod tasks;
pub mod ui;
pub mod workers;
pub mod workflows;

use std::{future::Future, sync::Arc};

use poem::{Endpoint, EndpointExt, Route, Server, get, listener::TcpAcceptor};
use poem_openapi::{OpenApiService, Tags};

pub use error::{ApiError, ErrorBody};
pub use models::{BodyLimit, NewTaskRequest, TaskView};

use crate::{
    config::ApiConfig,
    model::Routes,
    queue::Queue,
    redis::{connect, events::EventHub, notify::Notifier},
    tasks::{ArgsCheck, Registry},
};

#[derive(Tags)]
enum Tag {
    /// Enqueue tasks and read their state.
    Tasks,
    /// Chains, groups and chords of tasks.
    Workflows,
    /// Queue lengths.
    Queues,
    /// Workers, their status and running tasks.
    Workers,
    /// Live events (Server-Sent Events).
    Events,
    /// Liveness and readiness probes.
    Health,
    /// Periodic tasks and the scheduler leadership.
    Schedules,
}

/// What every request handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    queue: Queue,
    notifier: Notifier,
    /// The events stream reader (SSE).
    events: EventHub,
    /// Callback URLs by queue, for tasks that name none (`CELERIAC_QUEUE_CALLBACKS`).
    queue_callbacks: Arc<crate::model::QueueCallbacks>,
    /// Built-in tasks: their names are always accepted and their args checked here.
    builtins: Arc<Registry>,
    allow_unknown_tasks: bool,
    /// Where tasks enqueued without a queue go (`CELERIAC_ROUTES`).
    routes: Arc<Routes>,
    /// Arguments checked against what the workers published.
    args_check: ArgsCheck,
    /// Most tasks in one `POST /tasks/batch`.
    batch_max: usize,
}

impl AppState {
    /// Names the API knows are always accepted; others must be registered by a
    /// worker (checked inside the enqueue script), unless the operator allows any.
    fn require_registered(&self, name: &str) -> bool {
        !self.builtins.contains(name) && !self.allow_unknown_tasks
    }

    /// The 422 for an unknown task name, listing the names that can be enqueued.
    async fn unknown_task(&self, name: &str) -> ApiError {
        let mut known = self.builtins.names();
        match self.queue.registered_task_names().await {
            Ok(names) => known.extend(names),
            Err(e) => return e.into(),
        }
        known.sort();
        known.dedup();
        ApiError::unknown_task(name, known)
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Authentication is on but its tokens are missing or malformed.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The Redis connection could not be set up.
    #[error(transparent)]
    Queue(#[from] crate::error::QueueError),
}

/// Builds the whole HTTP application for `cfg`.
pub fn build_app(cfg: &ApiConfig) -> Result<impl Endpoint + 'static, ApiStartError> {
    cfg.validate()?;
    let auth = auth::Auth::load(&cfg.auth)?;
    if let (Some(a), Ok(_)) = (&auth, tokio::runtime::Handle::try_current()) {
        a.reload_on_sighup();
    }
    let queue = Queue::connect(&cfg.redis, cfg.engine.clone())?;
    let events = EventHub::new(
        cfg.redis.clone(),
        queue.shared_connection(),
        queue.keys().clone(),
        cfg.redis.connect_timeout,
    );
    let state = AppState {
        queue: queue.clone(),
        events,
        queue_callbacks: Arc::new(cfg.queue_callbacks.clone()),
        notifier: Notifier::new(connect::client(&cfg.redis)?, cfg.redis.connect_timeout * 3 / 4),
        builtins: Arc::new(Registry::with_builtins()),
        allow_unknown_tasks: cfg.allow_unknown_tasks,
        routes: Arc::new(cfg.routes.clone()),
        args_check: ArgsCheck::default(),
        batch_max: cfg.batch_max,
    };
    let apis = (
        tasks::TasksApi { state: state.clone() },
        task_control::TaskControlApi { state: state.clone() },
        task_types::TaskTypesApi { state: state.clone() },
        workflows::WorkflowsApi { state: state.clone() },
        queues::QueuesApi { state: state.clone() },
        schedules::SchedulesApi { state: state.clone() },
        workers::WorkersApi { state: state.clone() },
        events::EventsApi { state: state.clone() },
        health::HealthApi { state },
    );
    let service = OpenApiService::new(apis, "celeriac", env!("CARGO_PKG_VERSION"))
        .description("A task queue service: enqueue tasks over HTTP, workers run them, results stay in Redis.");
    let observe = metrics::Observe::new(metrics::ApiMetrics::default(), &service.spec());
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    Ok(Route::new()
        .at("/openapi.json", spec)
        .at("/metrics", get(metrics::metrics).data(queue))
        .nest("/docs", docs)
        .nest_no_strip("/ui", ui::Dashboard)
        .nest("/", service)
        .data(BodyLimit(cfg.max_body_bytes))
        .data(observe.metrics())
        .catch_all_error(error::render)
        .with(auth::Gate::new(auth))
        // Outermost: every answer, a 401 included, gets a request id and is counted.
        .with(observe))
}

/// Serves the API on `acceptor` until `shutdown` resolves, then drains
/// in-flight requests for up to the configured grace period.
pub async fn serve(
    cfg: ApiConfig,
    acceptor: TcpAcceptor,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiStartError> {
    let app = build_app(&cfg)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(cfg.shutdown_grace))
        .await
        .map_err(|e| {
            ApiStartError::Config(crate::config::ConfigError::Invalid {
                setting: "listener",
                reason: e.to_string(),
            })
        })
}
