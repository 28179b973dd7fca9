//! The NOSPACE alarm: past `--quota-backend-bytes` writes are refused until the space is given
//! back and the alarm disarmed; reads and deletes carry on (reference/etcd-api.md §1.6).

use etcd_client::{AlarmAction, AlarmType, Client, Txn, TxnOp};

use super::*;

/// 8 MiB: etcd 3.5.1 honours even a 2 MiB quota, and an empty cairn database is far below this.
pub(super) const QUOTA: &str = "--quota-backend-bytes=8388608";
const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
const FILL_KEYS: usize = 5;
const FILL_VALUE_BYTES: usize = 100 * 1024;
/// Ten times the quota: a store that never says no fails the scenario instead of filling the disk.
const MAX_FILL_PUTS: usize = 800;

/// Overwrites a few keys with large values until a put is refused; returns that error.
async fn fill_until_refused(client: &mut Client) -> etcd_client::Error {
    let value = "x".repeat(FILL_VALUE_BYTES);
    for attempt in 0..MAX_FILL_PUTS {
        let key = format!("nospace/k{}", attempt % FILL_KEYS);
        if let Err(error) = client.put(key, value.clone(), None).await {
            eprintln!("put {attempt} refused: {error}");
            return error;
        }
    }
    panic!("{MAX_FILL_PUTS} puts of {FILL_VALUE_BYTES} bytes, none refused under {QUOTA}");
}

/// The alarms the member reports through the Alarm RPC.
async fn alarms(client: &mut Client) -> Vec<(u64, AlarmType)> {
    let reply = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarm list");
    reply
        .alarms()
        .iter()
        .map(|alarm| (alarm.member_id(), alarm.alarm()))
        .collect()
}

/// `etcdctl alarm list`, with the trailing space etcdctl prints after each alarm removed.
async fn listed_alarms(etcdctl: &Etcdctl) -> Vec<String> {
    let stdout = etcdctl.ok(&["alarm", "list"]).await;
    stdout
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

async fn assert_writes_refused(client: &mut Client, why: &str) {
    eprintln!("writes must be refused: {why}");
    assert_grpc_error(
        client.put("nospace/new", "v", None).await,
        Code::ResourceExhausted,
        NO_SPACE,
    );
    assert_grpc_error(
        client.lease_grant(60, None).await,
        Code::ResourceExhausted,
        NO_SPACE,
    );
    let txn = Txn::new().and_then(vec![TxnOp::put("nospace/new", "v", None)]);
    assert_grpc_error(client.txn(txn).await, Code::ResourceExhausted, NO_SPACE);
}

pub(super) async fn nospace_alarm(cluster: Cluster) {
    let mut client = cluster.client().await.expect("a client");
    let etcdctl = etcdctl_for(&cluster, 0);
    let member_id = cluster.member_id(0);
    let raised = format!("memberID:{member_id} alarm:NOSPACE");

    let error = fill_until_refused(&mut client).await;
    assert_eq!(
        (grpc_code(&error), grpc_message(&error).as_str()),
        (Some(Code::ResourceExhausted), NO_SPACE),
        "{error}"
    );
    assert_eq!(listed_alarms(&etcdctl).await, [raised.as_str()]);
    assert_eq!(alarms(&mut client).await, [(member_id, AlarmType::Nospace)]);
    // etcd prints the alarm in Go's protobuf text form, trailing space included.
    let status = client.status().await.expect("status");
    assert_eq!(
        status.errors(),
        [format!("{raised} ")],
        "Status lists the alarm"
    );

    let value_len = FILL_VALUE_BYTES as i64;
    for options in [GetOptions::new(), GetOptions::new().with_serializable()] {
        let reply = client
            .get("nospace/k0", Some(options))
            .await
            .expect("reads still work");
        assert_eq!(
            reply.kvs().first().map(|kv| kv.value().len() as i64),
            Some(value_len)
        );
    }
    assert_writes_refused(&mut client, "past the quota").await;
    let deleted = client
        .delete("nospace/k4", None)
        .await
        .expect("deletes still work");
    assert_eq!(deleted.deleted(), 1);

    let current = deleted.header().expect("a header").revision();
    compact_physically(&client, current).await;
    etcdctl.ok(&["defrag"]).await;
    let status = client.status().await.expect("status");
    eprintln!("dbSize {} after compaction and defrag", status.db_size());
    assert_eq!(
        status.errors(),
        [format!("{raised} ")],
        "the alarm stays until disarmed"
    );
    assert_writes_refused(&mut client, "below the quota, alarm still raised").await;
    let reads_and_deletes = Txn::new().and_then(vec![
        TxnOp::get("nospace/k0", None),
        TxnOp::delete("nospace/k3", None),
    ]);
    client
        .txn(reads_and_deletes)
        .await
        .expect("a txn without puts runs");
    let gone = client.get("nospace/k3", None).await.expect("get");
    assert_eq!(gone.count(), 0, "the txn deleted its key");

    let disarmed = etcdctl.ok(&["alarm", "disarm"]).await;
    assert_eq!(
        disarmed.lines().map(str::trim_end).collect::<Vec<_>>(),
        [raised.as_str()],
        "disarm prints what it disarmed"
    );
    assert_eq!(listed_alarms(&etcdctl).await, Vec::<String>::new());
    assert_eq!(alarms(&mut client).await, []);
    client
        .put("nospace/new", "v", None)
        .await
        .expect("a put after disarm");
    client
        .lease_grant(60, None)
        .await
        .expect("a lease grant after disarm");
    assert!(client.status().await.expect("status").errors().is_empty());
}
