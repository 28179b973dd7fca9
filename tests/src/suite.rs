//! Runs a list of named checks one after another against one store, so a single run reports
//! every check that fails instead of stopping at the first.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// No single check should come near this; it only stops a hung server from hanging the run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a check is handed. `scoped` gives each check its own key space (a key prefix) so that
/// checks can share one store.
pub trait CheckContext: Clone + Send + 'static {
    fn scoped(&self, check: &str) -> Self;
}

pub struct Check<C> {
    pub name: &'static str,
    pub run: fn(C) -> CheckFuture,
}

/// `check!(name)` turns `async fn name(ctx: C)` into a [`Check`].
#[macro_export]
macro_rules! check {
    ($name:ident) => {
        $crate::Check {
            name: stringify!($name),
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

/// Runs every check in order; panics at the end listing those that failed (their own panic
/// messages are printed as they happen).
pub async fn run_checks<C: CheckContext>(label: &str, ctx: &C, checks: &[Check<C>]) {
    let mut failures = Vec::new();
    for check in checks {
        if let Err(reason) = run_one(check, ctx.scoped(check.name)).await {
            eprintln!("[{label}] FAILED {}: {reason}", check.name);
            failures.push(check.name);
        }
    }
    eprintln!(
        "[{label}] {} of {} checks passed",
        checks.len() - failures.len(),
        checks.len()
    );
    assert!(
        failures.is_empty(),
        "[{label}] {} checks failed: {}",
        failures.len(),
        failures.join(", ")
    );
}

async fn run_one<C: CheckContext>(check: &Check<C>, ctx: C) -> Result<(), String> {
    let task = tokio::spawn((check.run)(ctx));
    let abort = task.abort_handle();
    match tokio::time::timeout(CHECK_TIMEOUT, task).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) if error.is_panic() => Err(panic_message(error.into_panic())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => {
            abort.abort();
            Err(format!("did not finish within {CHECK_TIMEOUT:?}"))
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}
