//! Waiting on a condition with a deadline, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// How long to pause between two attempts; the deadline, not this, bounds a wait.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Retries `attempt` until it succeeds or `timeout` has passed; the error names `what` and
/// carries the last attempt's error. An attempt still running at the deadline is abandoned.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => "the last attempt was still running".to_owned(),
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last_error}");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
