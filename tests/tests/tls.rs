//! TLS under etcd's flags, against Cairn and etcd 3.5.1 alike: a mutual-TLS client port that
//! etcdctl and curl (HTTP/1.1 and HTTP/2) use with certificates and that refuses clients
//! without a trusted one while it keeps serving everyone else; a three-member cluster whose
//! members talk over peer TLS and verify each other; and `--auto-tls`/`--peer-auto-tls`.
//!
//! Each member also keeps a plain `http://` client URL beside its `https://` one (etcd allows
//! both), which the harness uses to wait for the cluster.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context};
use base64::Engine;
use cairn_tests::pki::Pki;
use cairn_tests::{wait_until, Backend, Cluster, Etcdctl, Schemes, ELECTION_TIMEOUT};
use serde_json::Value;

/// How long one curl or etcdctl run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                super::$scenario(cairn_tests::Backend::Cairn).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::$scenario(cairn_tests::Backend::Etcd).await;
            }
        }
    };
}

on_both!(mutual_tls_client_port);
on_both!(peer_tls_cluster);
on_both!(auto_tls);

async fn start(backend: Backend, size: usize, schemes: Schemes, flags: &[String]) -> Option<Cluster> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    match Cluster::start_tls(backend, size, schemes, &flags).await {
        Ok(Some(cluster)) => Some(cluster),
        Ok(None) => {
            eprintln!("skipped: no {} installed", backend.name());
            None
        }
        Err(error) => panic!("could not start a {size}-member {} cluster: {error:#}", backend.name()),
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// What one curl run printed, and its exit code.
struct Curl {
    code: i32,
    http_status: u16,
    body: String,
}

/// `curl -sS <args> -w '\n%{http_code}' url`: POSTs `body` when given.
async fn curl(url: &str, args: &[&str], body: Option<&str>) -> Curl {
    let mut command = tokio::process::Command::new("curl");
    command.args(["-sS", "--max-time", "8", "-w", "\n%{http_code}"]).args(args);
    if let Some(body) = body {
        command.args(["-X", "POST", "-H", "content-type: application/json", "-d", body]);
    }
    command.arg(url).kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output()).await.expect("curl finishes").expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl { code: output.status.code().unwrap_or(-1), http_status: status.trim().parse().unwrap_or(0), body: body.to_string() }
}

fn cert_args(pki: &Pki) -> Vec<String> {
    vec![
        format!("--cacert={}", pki.ca.display()),
        format!("--cert={}", pki.client.cert.display()),
        format!("--key={}", pki.client.key.display()),
    ]
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A JSON-gateway put then range over `url` with curl, for each HTTP version.
async fn json_put_get(url: &str, tls_args: &[&str], key: &str) {
    for version in ["--http1.1", "--http2"] {
        let mut args = tls_args.to_vec();
        args.push(version);
        let value = format!("value over {version}");
        let put = curl(&format!("{url}/v3/kv/put"), &args, Some(&format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(&value)))).await;
        assert_eq!((put.code, put.http_status), (0, 200), "put {version}: {}", put.body);
        let got = curl(&format!("{url}/v3/kv/range"), &args, Some(&format!(r#"{{"key":"{}"}}"#, b64(key)))).await;
        assert_eq!((got.code, got.http_status), (0, 200), "range {version}: {}", got.body);
        let json: Value = serde_json::from_str(&got.body).expect("range answers JSON");
        assert_eq!(json["kvs"][0]["value"], Value::String(b64(&value)), "{version}: {json}");
        assert_eq!(json["count"], "1", "{version}: {json}");
    }
}

/// `--cert-file --key-file --trusted-ca-file --client-cert-auth` on an `https://` client URL.
async fn mutual_tls_client_port(backend: Backend) {
    let pki = Pki::generate().expect("certificates");
    let Some(cluster) = start(backend, 1, Schemes { client_tls: true, peer_tls: false }, &pki.client_mtls_flags()).await else {
        return;
    };
    let url = cluster.tls_endpoint(0).to_string();
    let Some(etcdctl) = Etcdctl::find(std::slice::from_ref(&url)) else {
        eprintln!("skipped: no etcdctl installed");
        return;
    };
    let certs = cert_args(&pki);
    let with_certs = |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).chain(certs.iter().cloned()).collect() };
    // Short timeouts so that a refused client fails quickly (etcdctl retries the handshake).
    let quick = ["--dial-timeout=2s", "--command-timeout=3s"];

    // etcdctl with a trusted client certificate: gRPC over TLS.
    etcdctl.ok(&as_strs(&with_certs(&["put", "tls-key", "v1"]))).await;
    let got = etcdctl.ok(&as_strs(&with_certs(&["get", "tls-key"]))).await;
    assert_eq!(got, "tls-key\nv1\n");

    // Without a client certificate, or with one from an untrusted CA: refused.
    let mut no_cert: Vec<String> = vec!["get".into(), "tls-key".into(), format!("--cacert={}", path(&pki.ca))];
    no_cert.extend(quick.iter().map(|s| s.to_string()));
    etcdctl.fails(&as_strs(&no_cert)).await;
    let mut stranger: Vec<String> = vec![
        "get".into(),
        "tls-key".into(),
        format!("--cacert={}", path(&pki.ca)),
        format!("--cert={}", path(&pki.stranger.cert)),
        format!("--key={}", path(&pki.stranger.key)),
    ];
    stranger.extend(quick.iter().map(|s| s.to_string()));
    etcdctl.fails(&as_strs(&stranger)).await;

    // curl: a clean handshake failure without a certificate, and without trusting the
    // server's CA (exit 60). Under TLS 1.3 the server checks the client's certificate after
    // the client considers the handshake done, so curl sees the refusal as a handshake (35),
    // send (55) or receive (56) failure, depending on timing.
    let refused = curl(&format!("{url}/v3/kv/range"), &["--cacert", &path(&pki.ca)], Some("{}")).await;
    assert!(matches!(refused.code, 35 | 55 | 56), "curl without a client certificate: exit {} {}", refused.code, refused.body);
    let (cert, key) = (path(&pki.client.cert), path(&pki.client.key));
    let untrusted = curl(&format!("{url}/v3/kv/range"), &["--cert", &cert, "--key", &key], Some("{}")).await;
    assert_eq!(untrusted.code, 60, "curl not trusting the server's CA: {}", untrusted.body);

    // The member kept serving: the JSON gateway over TLS with both HTTP versions, etcdctl
    // again, and the plain listener beside it.
    let ca = path(&pki.ca);
    json_put_get(&url, &["--cacert", &ca, "--cert", &cert, "--key", &key], "tls-json").await;
    let got = etcdctl.ok(&as_strs(&with_certs(&["get", "tls-json", "--print-value-only"]))).await;
    assert_eq!(got, "value over --http2\n");
    let mut client = cluster.client().await.expect("a plain client");
    let plain = client.get("tls-key", None).await.expect("a plain get");
    assert_eq!(plain.kvs()[0].value(), b"v1");
}

/// Three members on `https://` peer URLs that verify each other's certificates; the cluster
/// replicates, and elects a new leader over TLS when the leader dies.
async fn peer_tls_cluster(backend: Backend) {
    let pki = Pki::generate().expect("certificates");
    let Some(mut cluster) = start(backend, 3, Schemes { client_tls: false, peer_tls: true }, &pki.peer_flags()).await else {
        return;
    };
    let leader = cluster.leader().await.expect("a leader");
    let follower = (leader + 1) % 3;
    let mut writer = cluster.member_client(leader).await.expect("a client");
    writer.put("peer-tls", "one", None).await.expect("put through the leader");
    let mut reader = cluster.member_client(follower).await.expect("a client");
    let got = reader.get("peer-tls", None).await.expect("a linearizable get through a follower");
    assert_eq!(got.kvs()[0].value(), b"one");

    cluster.kill(leader).expect("kill the leader");
    let survivor = follower;
    wait_until("a new leader elected over peer TLS", ELECTION_TIMEOUT, || async {
        let status = cluster.status(survivor).await?;
        ensure!(status.leader() != 0 && status.leader() != cluster.member_id(leader), "no new leader yet");
        Ok(())
    })
    .await
    .expect("a new leader");
    let mut client = cluster.member_client(survivor).await.expect("a client");
    wait_until("a write after the election", ELECTION_TIMEOUT, || {
        let mut client = client.clone();
        async move { client.put("peer-tls", "two", None).await.context("put") }
    })
    .await
    .expect("writes go on");
    let got = client.get("peer-tls", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"two");
}

/// `--auto-tls` and `--peer-auto-tls`: self-signed certificates made at start; the members
/// replicate over them, and a client that skips verification reaches the `https://` port.
async fn auto_tls(backend: Backend) {
    let flags = ["--auto-tls".to_string(), "--peer-auto-tls".to_string()];
    let Some(cluster) = start(backend, 3, Schemes { client_tls: true, peer_tls: true }, &flags).await else {
        return;
    };
    let mut client = cluster.client().await.expect("a client");
    client.put("auto-tls", "replicated", None).await.expect("put");
    for index in 0..3 {
        let mut member = cluster.member_client(index).await.expect("a client");
        let got = member.get("auto-tls", None).await.expect("a linearizable get");
        assert_eq!(got.kvs()[0].value(), b"replicated", "member {index}");
    }
    let url = cluster.tls_endpoint(1).to_string();
    json_put_get(&url, &["--insecure"], "auto-tls-json").await;
    // The certificate is self-signed: a client that checks it refuses it.
    let checked = curl(&format!("{url}/v3/kv/range"), &[], Some("{}")).await;
    assert_eq!(checked.code, 60, "curl verifying a self-signed certificate: {}", checked.body);
}
