//! Rate limits: token buckets per API key and per client IP, per route group. On one node the
//! buckets live in process; with `REELAY_REDIS_URL` they live in Redis (one atomic script per
//! check), so the limit holds for the whole cluster. If Redis cannot be reached, each node falls
//! back to its own buckets and keeps serving (logged and counted), and goes back to Redis by
//! itself when it answers again.

use std::{
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::RwLock;

use crate::error::ApiError;

/// `RATE/UNIT[:BURST]`, e.g. `20/s:100` or `600/m`; `0` or `off` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

impl FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("off") {
            return Ok(Limit {
                per_second: 0.0,
                burst: 0,
            });
        }
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected RATE/UNIT[:BURST], e.g. 20/s:100"))?;
        let count: f64 = count.parse().map_err(|_| format!("{s:?}: bad rate"))?;
        let seconds = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?}: the unit must be s, m or h")),
        };
        let burst = match burst {
            Some(b) => b.parse().map_err(|_| format!("{s:?}: bad burst"))?,
            None => count.ceil().max(1.0) as u32,
        };
        Ok(Limit {
            per_second: count / seconds,
            burst,
        })
    }
}

impl Limit {
    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0 || self.burst == 0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds until one token is back (for Retry-After), when refused.
    pub retry_after: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The shared token bucket: refill, take one if there is one, report. Time is Redis's own, so
/// nodes with skewed clocks agree.
const SCRIPT: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, math.floor(tokens), math.ceil((burst - tokens) / rate), math.ceil((1 - tokens) / rate)}
"#;

pub struct RateLimiter {
    namespace: String,
    redis_url: Option<String>,
    redis: RwLock<Option<redis::aio::ConnectionManager>>,
    script: redis::Script,
    local: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    /// When the last failed connection attempt was, so a dead Redis is not dialled per request.
    last_attempt: Mutex<Option<Instant>>,
}

const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_RETRY: Duration = Duration::from_secs(2);

impl RateLimiter {
    pub fn new(redis_url: Option<String>, namespace: String) -> Self {
        Self {
            namespace,
            redis_url,
            redis: RwLock::new(None),
            script: redis::Script::new(SCRIPT),
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            last_attempt: Mutex::new(None),
        }
    }

    /// Takes one token from the bucket `group`/`key`.
    pub async fn check(&self, group: &str, key: &str, limit: Limit) -> Decision {
        let name = format!("{}:{group}:{key}", self.namespace);
        if self.redis_url.is_some() {
            match self.check_redis(&name, limit).await {
                Ok(decision) => return decision,
                Err(e) => {
                    metrics::counter!("reelay_ratelimit_redis_errors_total").increment(1);
                    tracing::warn!(error = %e, "rate limits fall back to this node's own buckets");
                }
            }
        }
        self.check_local(&name, limit)
    }

    async fn connection(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        if let Some(connection) = self.redis.read().await.as_ref() {
            return Ok(connection.clone());
        }
        {
            let mut last = self.last_attempt.lock().expect("not poisoned");
            if last.is_some_and(|at| at.elapsed() < REDIS_RETRY) {
                anyhow::bail!("Redis was unreachable moments ago");
            }
            *last = Some(Instant::now());
        }
        let url = self.redis_url.as_deref().expect("checked by the caller");
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await??;
        *self.redis.write().await = Some(connection.clone());
        Ok(connection)
    }

    async fn check_redis(&self, name: &str, limit: Limit) -> anyhow::Result<Decision> {
        let mut connection = self.connection().await?;
        let mut invocation = self.script.key(name);
        invocation.arg(limit.per_second).arg(limit.burst);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut connection);
        let result = tokio::time::timeout(REDIS_TIMEOUT, call).await;
        let (allowed, remaining, reset, retry_after) = match result {
            Ok(Ok(values)) => values,
            Ok(Err(e)) => {
                self.forget_connection().await;
                return Err(e.into());
            }
            Err(_) => {
                self.forget_connection().await;
                anyhow::bail!("Redis did not answer within {REDIS_TIMEOUT:?}");
            }
        };
        Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u32,
            reset: reset.max(0) as u64,
            retry_after: retry_after.max(1) as u64,
        })
    }

    async fn forget_connection(&self) {
        *self.redis.write().await = None;
        *self.last_attempt.lock().expect("not poisoned") = Some(Instant::now());
    }

    fn check_local(&self, name: &str, limit: Limit) -> Decision {
        let bucket = self.local.get_with(name.to_owned(), || {
            Arc::new(Mutex::new(Bucket {
                tokens: f64::from(limit.burst),
                at: Instant::now(),
            }))
        });
        let mut bucket = bucket.lock().expect("not poisoned");
        let now = Instant::now();
        let burst = f64::from(limit.burst);
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * limit.per_second)
            .min(burst);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        Decision {
            allowed,
            remaining: bucket.tokens.floor() as u32,
            reset: ((burst - bucket.tokens) / limit.per_second).ceil() as u64,
            retry_after: ((1.0 - bucket.tokens) / limit.per_second).ceil().max(1.0) as u64,
        }
    }
}

/// The limits of one route group.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub group: &'static str,
    pub per_key: Limit,
    pub per_ip: Limit,
}

#[derive(Clone)]
pub struct RateLimitState {
    pub limiter: Arc<RateLimiter>,
    pub limits: GroupLimits,
    /// Take the client's address from X-Forwarded-For (behind a trusted proxy or CDN).
    pub trust_forwarded_for: bool,
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn client_ip(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        if let Some(first) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
        {
            return first.trim().to_owned();
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The bucket a bearer token counts against: its key id, or a digest for any other token, so
/// the token itself is never a bucket name.
fn key_of(headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?
        .1
        .trim();
    let id = token
        .strip_prefix("rly.")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(id, _)| crate::ids::KeyId::parse(id));
    Some(match id {
        Some(id) => id.to_string(),
        None => hex::encode(&super::hash_token(token)[..12]),
    })
}

fn headers_for(limit: Limit, decision: &Decision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(limit.burst));
    headers.insert(
        RATELIMIT_REMAINING.clone(),
        HeaderValue::from(decision.remaining),
    );
    headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(decision.reset));
}

/// Route-group middleware: the per-IP bucket first, then the per-key bucket; 429 with
/// Retry-After and RateLimit-* headers when either is empty.
pub async fn limit(
    State(state): State<RateLimitState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limits = state.limits;
    let mut tightest: Option<(Limit, Decision)> = None;
    let mut checks = Vec::with_capacity(2);
    if !limits.per_ip.is_off() {
        checks.push((
            format!("ip:{}", client_ip(&request, state.trust_forwarded_for)),
            limits.per_ip,
        ));
    }
    if !limits.per_key.is_off() {
        if let Some(key) = key_of(request.headers()) {
            checks.push((format!("key:{key}"), limits.per_key));
        }
    }
    for (bucket, limit) in checks {
        let decision = state.limiter.check(limits.group, &bucket, limit).await;
        if !decision.allowed {
            metrics::counter!("reelay_rate_limited_total", "group" => limits.group).increment(1);
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after the number of seconds in Retry-After",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(decision.retry_after));
            let mut extra = HeaderMap::new();
            headers_for(limit, &decision, &mut extra);
            for (name, value) in extra.iter() {
                error = error.with_header(name.clone(), value.clone());
            }
            return Err(error);
        }
        if tightest.is_none_or(|(_, d)| decision.remaining < d.remaining) {
            tightest = Some((limit, decision));
        }
    }
    let mut response = next.run(request).await;
    if let Some((limit, decision)) = tightest {
        headers_for(limit, &decision, response.headers_mut());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            "20/s:100".parse(),
            Ok(Limit {
                per_second: 20.0,
                burst: 100
            })
        );
        assert_eq!(
            "600/m".parse(),
            Ok(Limit {
                per_second: 10.0,
                burst: 600
            })
        );
        assert!("off".parse::<Limit>().unwrap().is_off());
        assert!("0".parse::<Limit>().unwrap().is_off());
        for bad in ["", "20", "20/x", "a/s", "20/s:x"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_local_bucket_allows_its_burst_then_refuses() {
        let limiter = RateLimiter::new(None, "t".into());
        let limit = Limit {
            per_second: 1.0,
            burst: 3,
        };
        for n in 0..3 {
            assert!(limiter.check_local("k", limit).allowed, "request {n}");
        }
        let refused = limiter.check_local("k", limit);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1);
        assert!(
            limiter.check_local("other", limit).allowed,
            "buckets are per key"
        );
    }
}
