//! `etcdctl member list` and MemberList: every member answers with the same list.

use super::*;

/// `member list -w json` through each member: its own ID in the header, one cluster ID, every
/// member in ID order with its name and URLs; the same list from all three, in etcdctl's simple
/// format too, and through etcd-client.
pub(super) async fn member_list(cluster: Cluster) {
    let mut answers = Vec::new();
    for index in 0..cluster.size() {
        let json = etcdctl_for(&cluster, index).json(&["member", "list"]).await;
        let header = &json["header"];
        assert_eq!(
            as_u64(header, "member_id"),
            cluster.member_id(index),
            "the header names the member that answered: {json}"
        );
        assert_ne!(as_u64(header, "cluster_id"), 0, "{json}");
        assert!(as_u64(header, "raft_term") > 0, "{json}");
        assert!(
            header.get("revision").is_none(),
            "Cluster RPC headers carry revision 0, which etcdctl leaves out: {json}"
        );
        let members = json["members"]
            .as_array()
            .unwrap_or_else(|| panic!("a members array: {json}"));
        let listed: Vec<u64> = members.iter().map(|member| as_u64(member, "ID")).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted, "members come in ID order: {json}");
        let known: BTreeSet<u64> = (0..cluster.size()).map(|i| cluster.member_id(i)).collect();
        assert_eq!(
            listed.iter().copied().collect::<BTreeSet<_>>(),
            known,
            "{json}"
        );
        for member in members {
            check_json_member(&cluster, member);
        }
        answers.push(json);
    }
    for (index, json) in answers.iter().enumerate() {
        assert_eq!(
            json["header"]["cluster_id"], answers[0]["header"]["cluster_id"],
            "member {index} names the same cluster"
        );
        assert_eq!(
            json["members"], answers[0]["members"],
            "member {index} lists the same members"
        );
    }

    let simple = etcdctl_for(&cluster, 1).ok(&["member", "list"]).await;
    let mut by_id: Vec<usize> = (0..cluster.size()).collect();
    by_id.sort_by_key(|&index| cluster.member_id(index));
    let expected: String = by_id
        .iter()
        .map(|&index| {
            format!(
                "{:x}, started, {}, {}, {}, false\n",
                cluster.member_id(index),
                cluster.name(index),
                cluster.peer_url(index),
                cluster.endpoint(index)
            )
        })
        .collect();
    assert_eq!(simple, expected, "`member list` in the simple format");

    let cluster_id = as_u64(&answers[0]["header"], "cluster_id");
    for index in 0..cluster.size() {
        let reply = client_for(&cluster, index)
            .await
            .member_list()
            .await
            .expect("member list");
        let header = reply.header().expect("a header");
        assert_eq!(
            (header.cluster_id(), header.member_id(), header.revision()),
            (cluster_id, cluster.member_id(index), 0),
            "MemberList's header: the cluster, the member that answered, revision 0"
        );
        let members = reply.members();
        assert_eq!(members.len(), cluster.size(), "{members:?}");
        for other in 0..cluster.size() {
            let member = listed(members, cluster.member_id(other));
            assert_started(&cluster, other, member);
            assert!(!member.is_learner(), "{member:?}");
        }
    }
}

/// One member as `member list -w json` prints it: a voter's `isLearner` is false, which etcdctl
/// leaves out.
#[track_caller]
fn check_json_member(cluster: &Cluster, member: &Value) {
    let id = as_u64(member, "ID");
    let index = (0..cluster.size())
        .find(|&index| cluster.member_id(index) == id)
        .unwrap_or_else(|| panic!("{id:x} is not a member the harness started: {member}"));
    assert_eq!(member["name"], cluster.name(index), "{member}");
    assert_eq!(
        member["peerURLs"],
        serde_json::json!([cluster.peer_url(index)]),
        "{member}"
    );
    assert_eq!(
        member["clientURLs"],
        serde_json::json!([cluster.endpoint(index)]),
        "{member}"
    );
    assert!(member.get("isLearner").is_none(), "a voter: {member}");
}
