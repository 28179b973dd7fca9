//! Growing a cluster from one member to three, as an operator does, then removing the original.

use super::*;

const KEYS: usize = 20;

/// `member add` then a process started with `--initial-cluster-state existing`, twice (once
/// through etcdctl, once through etcd-client); then the original member is removed: it exits,
/// the other two elect a leader among themselves, keep every key and take writes, and after
/// both restart they are still the same members of the same cluster.
pub(super) async fn grow_from_one_then_remove_the_original(mut cluster: Cluster) {
    let cluster_id = cluster_id(&cluster, 0).await;
    let second = add_with_etcdctl(&mut cluster, "m1", cluster_id).await;
    client_for(&cluster, second)
        .await
        .put("grow/through-m1", "1", None)
        .await
        .expect("a write through the new member");
    let third = add_with_client(&mut cluster, "m2", cluster_id).await;

    let mut writer = client_for(&cluster, third).await;
    let mut expected = BTreeMap::from([("grow/through-m1".to_owned(), "1".to_owned())]);
    for key in 0..KEYS {
        let (key, value) = (format!("grow/k{key:02}"), format!("v{key}"));
        writer
            .put(key.as_str(), value.as_str(), None)
            .await
            .expect("put");
        expected.insert(key, value);
    }
    for index in 0..3 {
        let list = list_via(&cluster, index).await;
        assert_eq!(list.len(), 3, "member {index}: {list:?}");
        for member in 0..3 {
            assert_started(&cluster, member, listed(&list, cluster.member_id(member)));
        }
    }

    let original = cluster.member_id(0);
    let ran = reconfigure_ctl(
        &etcdctl_for(&cluster, second),
        &["member", "remove", &format!("{original:x}")],
    )
    .await;
    assert!(ran.success, "member remove: {}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("Member {original:>16x} removed from cluster {cluster_id:>16x}\n")
    );
    let exit = cluster
        .wait_for_exit(0, ELECTION_TIMEOUT)
        .await
        .expect("the removed member shuts itself down");
    eprintln!("the removed member exited: {exit}");

    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("the two that remain elect a leader");
    assert!(leader == second || leader == third, "leader {leader}");
    for index in [second, third] {
        assert_eq!(
            pairs(&cluster, index, "grow/").await,
            expected,
            "member {index}"
        );
        let key = format!("grow/after-remove-{index}");
        client_for(&cluster, index)
            .await
            .put(key.as_str(), "2", None)
            .await
            .unwrap_or_else(|error| panic!("a write through member {index}: {error}"));
        expected.insert(key, "2".to_owned());
    }
    let before: Vec<Member> = list_via(&cluster, second).await;
    assert_eq!(
        ids(&before),
        BTreeSet::from([cluster.member_id(second), cluster.member_id(third)]),
        "{before:?}"
    );
    assert_eq!(ids(&list_via(&cluster, third).await), ids(&before));

    for index in [second, third] {
        cluster.stop(index).await.expect("SIGTERM");
    }
    for index in [second, third] {
        cluster.relaunch(index).expect("start again");
    }
    cluster
        .wait_for_leader(START_TIMEOUT)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the joined members restart: {error:#}\n{}",
                cluster.all_log_tails()
            )
        });
    for index in [second, third] {
        let status = cluster.status(index).await.expect("status");
        let header = status.header().expect("a header");
        assert_eq!(
            (header.member_id(), header.cluster_id()),
            (cluster.member_id(index), cluster_id),
            "member {index} keeps its ID and its cluster after a restart"
        );
        assert_eq!(list_via(&cluster, index).await, before, "member {index}");
        assert_eq!(
            pairs(&cluster, index, "grow/").await,
            expected,
            "member {index}"
        );
    }
}

/// `etcdctl member add <name> --peer-urls=<url>`, what it prints and lists, then the new
/// member's start. Returns its index.
async fn add_with_etcdctl(cluster: &mut Cluster, name: &str, cluster_id: u64) -> usize {
    let index = cluster.plan_member(name).expect("ports for a new member");
    let peer_url = cluster.peer_url(index).to_owned();
    let mut initial_cluster = entries(&cluster.initial_cluster().await.expect("the members"));
    initial_cluster.insert(format!("{name}={peer_url}"));
    let ran = reconfigure_ctl(
        &etcdctl_for(cluster, 0),
        &["member", "add", name, &format!("--peer-urls={peer_url}")],
    )
    .await;
    assert!(ran.success, "member add: {}", ran.stderr);
    let id = check_member_add_output(&ran.stdout, cluster_id, name, &peer_url, &initial_cluster);
    check_unstarted(cluster, id, &peer_url).await;
    assert_eq!(
        entries(&cluster.initial_cluster().await.expect("the members")),
        initial_cluster,
        "the harness starts the member with what etcdctl printed"
    );
    join(cluster, index, id).await;
    index
}

/// MemberAdd through etcd-client: the reply's member and member list, then the new member's
/// start. Returns its index.
async fn add_with_client(cluster: &mut Cluster, name: &str, cluster_id: u64) -> usize {
    let index = cluster.plan_member(name).expect("ports for a new member");
    let peer_url = cluster.peer_url(index).to_owned();
    let client = client_for(cluster, 0).await;
    let reply = reconfigure("MemberAdd to be accepted", || {
        let (mut client, peer_url) = (client.clone(), peer_url.clone());
        async move { client.member_add([peer_url], None).await }
    })
    .await
    .expect("member add");
    let header = reply.header().expect("a header");
    assert_eq!(
        (header.cluster_id(), header.revision()),
        (cluster_id, 0),
        "Cluster RPC headers carry revision 0"
    );
    let added = reply.member().expect("the added member");
    assert_ne!(added.id(), 0);
    assert_eq!(
        (
            added.name(),
            added.peer_urls(),
            added.client_urls(),
            added.is_learner()
        ),
        ("", &[peer_url.clone()][..], &[][..], false),
        "a member added as a voter, not started yet"
    );
    let members = reply.member_list();
    let mut expected: BTreeSet<u64> = cluster.running().map(|i| cluster.member_id(i)).collect();
    expected.insert(added.id());
    assert_eq!(
        ids(members),
        expected,
        "the reply lists every member: {members:?}"
    );
    let id = added.id();
    check_unstarted(cluster, id, &peer_url).await;
    join(cluster, index, id).await;
    index
}

/// Member `id` is listed, not started yet: no name, no client URLs, a voter.
async fn check_unstarted(cluster: &Cluster, id: u64, peer_url: &str) {
    let list = list_via(cluster, 0).await;
    let member = listed(&list, id);
    assert_eq!(
        (
            member.name(),
            member.peer_urls(),
            member.client_urls(),
            member.is_learner()
        ),
        ("", &[peer_url.to_owned()][..], &[][..], false),
        "an added member that has not started"
    );
}

/// Starts planned member `index`, added as `id`, and waits until it serves and the cluster
/// lists it as started.
async fn join(cluster: &mut Cluster, index: usize, id: u64) {
    let joined = cluster
        .join(index)
        .await
        .unwrap_or_else(|error| panic!("member {index} joins: {error:#}"));
    assert_eq!(
        joined, id,
        "the member takes the ID that member add gave it"
    );
    wait_serving(cluster, index).await;
    wait_published(cluster, 0, index).await;
    assert_started(cluster, index, listed(&list_via(cluster, 0).await, id));
}
