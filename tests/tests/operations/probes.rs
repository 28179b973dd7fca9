//! `/readyz` and `/livez` in etcd 3.6's text format: `ok`, each check's line with `?verbose`,
//! one check at `/readyz/<check>`, `?exclude=<check>`, 503 with the failing check's reason.

use cairn_tests::Cluster;

use super::*;

const READY_VERBOSE: &str = "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n";

/// What a healthy member answers, path by path.
pub(super) async fn readyz_and_livez(cluster: Cluster) {
    let endpoint = cluster.endpoint(0);
    let answers = [
        ("/readyz", 200, "ok\n"),
        ("/readyz?verbose", 200, READY_VERBOSE),
        ("/readyz?verbose&exclude=linearizable_read&exclude=non_learner", 200, "[+]data_corruption ok\n[+]serializable_read ok\nok\n"),
        ("/readyz?exclude=no_such_check", 200, "ok\n"),
        ("/readyz/linearizable_read", 200, "ok\n"),
        ("/readyz/non_learner?verbose", 200, "[+]non_learner ok\nok\n"),
        ("/livez", 200, "ok\n"),
        ("/livez?verbose", 200, "[+]serializable_read ok\nok\n"),
        ("/livez/serializable_read?verbose", 200, "[+]serializable_read ok\nok\n"),
        ("/readyz/no_such_check", 404, "404 page not found\n"),
        ("/livez/linearizable_read", 404, "404 page not found\n"),
    ];
    for (path, status, body) in answers {
        let reply = http::get(endpoint, path, HTTP_TIMEOUT).await.expect("an answer");
        assert_eq!((reply.status, reply.text().as_str()), (status, body), "GET {path}");
        assert_eq!(reply.header("content-type"), Some(TEXT), "GET {path}");
    }
    for path in ["/readyz", "/livez", "/readyz/serializable_read"] {
        let reply = http::send(endpoint, &http::Request::new("POST", path).body(b""), HTTP_TIMEOUT).await.expect("an answer");
        assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")), "POST {path}");
    }
}

/// A member without quorum is alive but not ready: its linearizable read fails (within the
/// request timeout), its serializable one does not.
pub(super) async fn readiness_without_quorum(endpoint: &str) {
    let ready = http::get(endpoint, "/readyz", HTTP_TIMEOUT).await.expect("/readyz answers without quorum");
    assert_eq!(ready.status, 503, "{ready:?}");
    let body = ready.text();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "four checks and Go's http.Error newline: {body:?}");
    assert_eq!(&lines[..2], ["[+]data_corruption ok", "[+]serializable_read ok"], "{body:?}");
    assert!(lines[2].starts_with("[-]linearizable_read failed: etcdserver: "), "{body:?}");
    assert_eq!(&lines[3..], ["[+]non_learner ok", ""], "{body:?}");
    let live = http::get(endpoint, "/livez", HTTP_TIMEOUT).await.expect("/livez answers without quorum");
    assert_eq!((live.status, live.text().as_str()), (200, "ok\n"), "alive without quorum");
    let one = http::get(endpoint, "/readyz/serializable_read", HTTP_TIMEOUT).await.expect("an answer");
    assert_eq!((one.status, one.text().as_str()), (200, "ok\n"), "a local read needs no quorum");
}
