//! `GET /metrics` (Prometheus / OpenMetrics text) and the request middleware
//! that feeds it and the logs.
//!
//! Cluster-wide gauges are read from Redis at scrape time (the same indexes as
//! `GET /queues` and `GET /workers`), so any API replica reports the same
//! figures and nothing is polled between scrapes. The HTTP figures are this
//! process's own; `route` is the matched path template (`/tasks/:task_id`),
//! never the raw path, so label sets stay bounded.
//!
//! The middleware also gives each request an id (an incoming `X-Request-Id` of
//! at most 64 characters `[A-Za-z0-9._-]` is kept, otherwise a new UUID), runs
//! the request in a span carrying it, logs one line per request, and returns
//! the id as `X-Request-Id`.

use std::{collections::HashMap, sync::Arc, time::Instant};

use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result, handler, http::HeaderValue, web::Data,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tracing::Instrument;

use crate::{model::WorkerStatus, queue::Queue};

/// Content type of the metrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// Request seconds buckets.
const HTTP_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// This process's HTTP metrics. Cheap to clone (shared).
#[derive(Clone)]
pub struct ApiMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    requests: Family<HttpLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                requests: Family::default(),
                durations: Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS.iter().copied())),
            }),
        }
    }
}

impl ApiMetrics {
    fn record(&self, method: &'static str, route: &Arc<str>, status: u16, secs: f64) {
        let route = route.clone();
        self.inner
            .durations
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(secs);
        self.inner
            .requests
            .get_or_create(&HttpLabels { method, route, status })
            .inc();
    }

    /// Reads the cluster figures from Redis and encodes them with this process's own.
    pub async fn render(&self, queue: &Queue) -> crate::error::Result<String> {
        let overview = queue.overview(None).await?;
        let mut registry = Registry::default();
        let gauge = |registry: &mut Registry, name: &str, help: &str, values: Vec<(String, f64)>| {
            let family = Family::<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
            for (queue, v) in values {
                family.get_or_create(&QueueLabel { queue }).set(v);
            }
            registry.register(name, help, family);
        };
        let per_queue = |f: &dyn Fn(&crate::model::QueueStats) -> f64| {
            overview
                .queues
                .iter()
                .map(|q| (q.queue.clone(), f(q)))
                .collect::<Vec<_>>()
        };
        gauge(
            &mut registry,
            "celeriac_queue_ready",
            "Tasks ready to be claimed (due delayed included)",
            per_queue(&|q| q.ready as f64),
        );
        gauge(
            &mut registry,
            "celeriac_queue_delayed",
            "Tasks waiting for their time",
            per_queue(&|q| q.delayed as f64),
        );
        gauge(
            &mut registry,
            "celeriac_queue_running",
            "Tasks running under a lease",
            per_queue(&|q| q.running as f64),
        );
        gauge(
            &mut registry,
            "celeriac_queue_oldest_ready_age_seconds",
            "Age of the task at the head of the queue",
            per_queue(&|q| q.oldest_ready_age_s),
        );
        let workers = Family::<StatusLabel, Gauge>::default();
        for status in WorkerStatus::ALL {
            let n = overview.workers.iter().filter(|w| w.status == status).count();
            workers
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(n as i64);
        }
        registry.register("celeriac_workers", "Registered workers by status", workers);
        registry.register(
            "celeriac_http_requests",
            "HTTP requests served by this API process",
            self.inner.requests.clone(),
        );
        registry.register(
            "celeriac_http_request_duration_seconds",
            "Time to answer HTTP requests (SSE: until the stream opens)",
            self.inner.durations.clone(),
        );
        let mut out = String::new();
        let _ = encode(&mut out, &registry);
        Ok(out)
    }
}

/// `GET /metrics`.
#[handler]
pub(crate) async fn metrics(metrics: Data<&ApiMetrics>, queue: Data<&Queue>) -> Response {
    match metrics.render(&queue).await {
        Ok(text) => Response::builder().content_type(CONTENT_TYPE).body(text),
        Err(e) => {
            tracing::warn!(error.message = %e, "cannot read the cluster figures");
            crate::api::ApiError::from(e).into_poem().into_response()
        }
    }
}

/// The request middleware: request id, span, log line, HTTP metrics.
pub struct Observe {
    metrics: ApiMetrics,
    routes: Arc<HashMap<String, Route>>,
}

impl Observe {
    /// A middleware recording into `metrics`; `spec` (the OpenAPI document)
    /// gives the parameter names of its routes.
    pub fn new(recorder: ApiMetrics, spec: &str) -> Self {
        Self {
            metrics: recorder,
            routes: Arc::new(route_names(spec)),
        }
    }
}

impl Observe {
    /// The metrics it records into.
    pub fn metrics(&self) -> ApiMetrics {
        self.metrics.clone()
    }
}

/// A route of the OpenAPI document, by the pattern poem routes it with.
struct Route {
    /// Its template with the parameters' names (`/tasks/:task_id`): the `route` label.
    template: Arc<str>,
    /// Its methods, as a 405 answer's `Allow` header says them (`GET, DELETE`).
    allow: Option<HeaderValue>,
}

/// poem-openapi routes `/tasks/{task_id}` as `/tasks/:param0`: the table back
/// from its patterns to templates with the parameters' names, and the methods.
fn route_names(spec: &str) -> HashMap<String, Route> {
    let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    let Some(paths) = spec["paths"].as_object() else {
        return HashMap::new();
    };
    paths
        .iter()
        .map(|(path, operations)| {
            let (mut pattern, mut template, mut n) = (String::new(), String::new(), 0);
            for segment in path.split('/').skip(1) {
                pattern.push('/');
                template.push('/');
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => {
                        pattern.push_str(&format!(":param{n}"));
                        template.push(':');
                        template.push_str(name);
                        n += 1;
                    }
                    None => {
                        pattern.push_str(segment);
                        template.push_str(segment);
                    }
                }
            }
            let methods: Vec<String> = operations
                .as_object()
                .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                .unwrap_or_default();
            let allow = (!methods.is_empty())
                .then(|| HeaderValue::from_str(&methods.join(", ")).ok())
                .flatten();
            let route = Route {
                template: template.into(),
                allow,
            };
            (pattern, route)
        })
        .collect()
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// [`Observe`] around an endpoint.
pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: ApiMetrics,
    routes: Arc<HashMap<String, Route>>,
}

/// A request's method as a label (no allocation per request; a method
/// outside HTTP's own is counted as `OTHER`, which keeps label sets bounded).
fn method_label(m: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// A caller's request id, if it is a sane one.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| s.to_owned())
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(sane_request_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let method = method_label(req.method());
        let span = tracing::info_span!("http_request", request_id = %id, method = %method, path = %req.uri().path());
        let began = Instant::now();
        // Boxed: the endpoints' futures are large, and moving one into the span's
        // wrapper and then into this future copied it (≈ 3 % of the API's CPU).
        let result = Box::pin(self.inner.call(req)).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => {
                let pattern = e.data::<PathPattern>().cloned();
                let mut r = e.into_response();
                if let Some(p) = pattern {
                    r.set_data(p);
                }
                r
            }
        };
        let known = resp
            .data::<PathPattern>()
            .map(|p| (self.routes.get(&*p.0), p.0.clone()));
        let route = match &known {
            Some((Some(r), _)) => r.template.clone(),
            // Routes outside the OpenAPI document (`/metrics`, `/ui/*`) by their pattern;
            // an unknown path under the API's nest matches only the empty one.
            Some((None, pattern)) if !pattern.is_empty() => pattern.clone(),
            _ => "unmatched".into(),
        };
        // RFC 9110: a 405 says which methods the resource has.
        if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
            && let Some((Some(Route { allow: Some(allow), .. }), _)) = &known
        {
            resp.headers_mut().insert(poem::http::header::ALLOW, allow.clone());
        }
        let status = resp.status();
        let secs = began.elapsed().as_secs_f64();
        self.metrics.record(method, &route, status.as_u16(), secs);
        // Probes and scrapes arrive every few seconds: logged at debug only.
        let routine = matches!(&*route, "/healthz" | "/readyz" | "/metrics");
        span.in_scope(|| {
            let code = status.as_u16();
            if status.is_server_error() {
                tracing::warn!(%route, status = code, duration_ms = secs * 1000.0, "request");
            } else if routine {
                tracing::debug!(%route, status = code, duration_ms = secs * 1000.0, "request");
            } else {
                tracing::info!(%route, status = code, duration_ms = secs * 1000.0, "request");
            }
        });
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::{route_names, sane_request_id};
    use poem::http::HeaderValue;

    #[test]
    fn routes_are_named_by_their_openapi_templates() {
        let spec =
            r#"{"paths": {"/tasks/{task_id}/cancel": {"post": {}}, "/queues": {"get": {}, "delete": {}}, "/x": {}}}"#;
        let names = route_names(spec);
        assert_eq!(&*names["/tasks/:param0/cancel"].template, "/tasks/:task_id/cancel");
        assert_eq!(&*names["/queues"].template, "/queues");
        let allow = |p: &str| names[p].allow.as_ref().map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allow("/tasks/:param0/cancel").as_deref(), Some("POST"));
        assert_eq!(allow("/queues").as_deref(), Some("DELETE, GET"));
        assert_eq!(allow("/x"), None);
    }

    #[test]
    fn only_sane_request_ids_are_kept() {
        assert_eq!(
            sane_request_id(&HeaderValue::from_static("abc-1.x_y")).as_deref(),
            Some("abc-1.x_y")
        );
        assert_eq!(sane_request_id(&HeaderValue::from_static("a b")), None);
        assert_eq!(sane_request_id(&HeaderValue::from_str(&"x".repeat(65)).unwrap()), None);
    }
}
