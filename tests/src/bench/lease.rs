//! The lease-keepalive workload: each client grants a lease and opens a keep-alive stream
//! before the clock starts; an operation is one keep-alive round trip on that stream.

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use tonic::Code;

use super::driver::Worker;
use super::record::{error_message, Outcome};
use crate::grpc::grpc_code;

pub struct KeepAlive {
    client: Client,
    ttl: i64,
    held: Option<Held>,
    /// Set when the server has no lease method: asking again would only add load.
    unsupported: Option<String>,
}

/// A granted lease and its open keep-alive stream.
struct Held {
    id: i64,
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

impl KeepAlive {
    pub fn new(client: Client, ttl: i64) -> Self {
        Self {
            client,
            ttl,
            held: None,
            unsupported: None,
        }
    }

    /// Grants a lease and opens its keep-alive stream, unless the server lacks either method.
    async fn hold(&mut self) -> Result<Held, String> {
        if let Some(message) = &self.unsupported {
            return Err(message.clone());
        }
        let held = grant_and_open(&mut self.client, self.ttl).await;
        if let Err((message, Some(Code::Unimplemented))) = &held {
            self.unsupported = Some(message.clone());
        }
        held.map_err(|(message, _)| message)
    }
}

async fn grant_and_open(client: &mut Client, ttl: i64) -> Result<Held, (String, Option<Code>)> {
    let failed = |step: &str, e: etcd_client::Error| (format!("{step}: {}", error_message(&e)), grpc_code(&e));
    let id = client
        .lease_grant(ttl, None)
        .await
        .map_err(|e| failed("grant", e))?
        .id();
    match client.lease_keep_alive(id).await {
        Ok((keeper, responses)) => Ok(Held { id, keeper, responses }),
        Err(e) => {
            let _ = client.lease_revoke(id).await;
            Err(failed("keep-alive", e))
        }
    }
}

impl Worker for KeepAlive {
    async fn prepare(&mut self) {
        self.held = self.hold().await.ok();
    }

    /// The lease is taken out while the round trip runs: if the operation is dropped at its
    /// timeout, a late response must not be read as the next operation's, so the next one
    /// starts over with a new lease.
    async fn op(&mut self, _n: u64) -> Outcome {
        let mut held = match self.held.take() {
            Some(held) => held,
            None => match self.hold().await {
                Ok(held) => held,
                Err(message) => return Outcome::Failed(message),
            },
        };
        if let Err(e) = held.keeper.keep_alive().await {
            return Outcome::Failed(error_message(&e));
        }
        match held.responses.message().await {
            Ok(Some(response)) if response.ttl() > 0 => {
                self.held = Some(held);
                Outcome::Done
            }
            Ok(Some(_)) => Outcome::Failed("the lease expired".into()),
            Ok(None) => Outcome::Failed("the server closed the keep-alive stream".into()),
            Err(e) => Outcome::Failed(error_message(&e)),
        }
    }

    async fn finish(mut self) {
        if let Some(held) = self.held.take() {
            let _ = self.client.lease_revoke(held.id).await;
        }
    }
}
