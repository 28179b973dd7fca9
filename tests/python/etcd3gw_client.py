"""etcd3gw (the OpenStack client of etcd's HTTP/JSON gateway) against one endpoint.

Run by tests/tests/json_gateway.rs against Cairn and etcd 3.5.1:
    python3 tests/python/etcd3gw_client.py http://127.0.0.1:2379
Exits 0 when every step behaved as against etcd; otherwise prints the failing step and exits 1.
Every wait is bounded, so a hung gateway fails the script instead of hanging it.
"""

import sys
import threading
import urllib.parse
import uuid

from etcd3gw.client import Etcd3Client

# How long any single wait may take; the gateway answers in milliseconds.
TIMEOUT = 10.0


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def kv(client, prefix):
    key = prefix + "key"
    check(client.put(key, "value1"), "put")
    check(client.get(key) == [b"value1"], f"get after put: {client.get(key)}")
    value, meta = client.get(key, metadata=True)[0]
    check(value == b"value1" and meta["key"] == key.encode(), f"get with metadata: {meta}")
    check(int(meta["version"]) == 1, f"first version: {meta}")
    check(client.create(key, "other") is False, "create of an existing key fails")
    check(client.replace(key, "value1", "value2"), "replace with the right value")
    check(client.get(key) == [b"value2"], "get after replace")
    check(client.delete(key), "delete of an existing key")
    check(client.get(key) == [], "get after delete")
    check(client.delete(key) is False, "delete of a missing key")


def prefixes(client, prefix):
    for name in ("a", "b", "c"):
        client.put(prefix + "dir/" + name, name.upper())
    client.put(prefix + "dis", "outside")
    found = client.get_prefix(prefix + "dir/", sort_order="ascend", sort_target="key")
    check([v for v, _ in found] == [b"A", b"B", b"C"], f"get_prefix: {found}")
    check(client.delete_prefix(prefix + "dir/"), "delete_prefix")
    check(client.get_prefix(prefix + "dir/") == [], "get_prefix after delete_prefix")


def watch(client, prefix):
    events, cancel = client.watch_prefix(prefix + "watched/")
    got = []
    done = threading.Event()

    def consume():
        for event in events:
            got.append(event)
            if len(got) == 2:
                break
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    # The watch exists once the gateway has answered `created`; a put before that could be
    # missed, so keep writing until the watcher reports one (each put is a new event).
    attempt = 0
    while not done.wait(0.2):
        attempt += 1
        check(attempt * 0.2 < TIMEOUT, f"watch events within {TIMEOUT}s, got {got}")
        client.put(prefix + "watched/k", f"v{attempt}")
    cancel()
    for event in got:
        check(event["kv"]["key"] == (prefix + "watched/k").encode(), f"event key: {event}")
        check(event.get("type", "PUT") == "PUT", f"event type: {event}")


def leases(client, prefix):
    lease = client.lease(ttl=30)
    check(lease.id > 0, f"lease id {lease.id}")
    client.put(prefix + "leased", "x", lease=lease)
    ttl = lease.ttl()
    check(0 < ttl <= 30, f"ttl {ttl}")
    check(lease.refresh() == 30, "keep-alive answers the granted TTL")
    check(lease.keys() == [(prefix + "leased").encode()], f"keys {lease.keys()}")
    check(lease.revoke(), "revoke")
    check(client.get(prefix + "leased") == [], "revoking deletes the leased key")
    check(lease.refresh() == -1, "keep-alive of a revoked lease answers no TTL")
    check(lease.ttl() == -1, "time-to-live of a revoked lease")


def locks(client, prefix):
    name = prefix.strip("/") + "-lock"
    first = client.lock(name, ttl=30)
    second = client.lock(name, ttl=30)
    check(first.acquire(), "acquire a free lock")
    check(first.is_acquired(), "holder sees the lock")
    check(second.acquire() is False, "a held lock cannot be acquired")
    check(first.refresh() == 30, "refresh the lock's lease")
    check(first.release(), "release")
    check(second.acquire(), "acquire after release")
    check(second.release(), "release again")


def members(client):
    found = client.members()
    check(len(found) == 1 and found[0]["clientURLs"], f"members {found}")
    status = client.status()
    check("version" in status and "leader" in status, f"status {status}")


def main():
    url = urllib.parse.urlparse(sys.argv[1])
    client = Etcd3Client(host=url.hostname, port=url.port, timeout=TIMEOUT)
    prefix = f"/etcd3gw-{uuid.uuid4().hex[:8]}/"
    steps = [
        ("kv", lambda: kv(client, prefix)),
        ("prefixes", lambda: prefixes(client, prefix)),
        ("watch", lambda: watch(client, prefix)),
        ("leases", lambda: leases(client, prefix)),
        ("locks", lambda: locks(client, prefix)),
        ("members", lambda: members(client)),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as error:  # report the step, whatever failed in it
            print(f"FAILED {name}: {type(error).__name__}: {error}", flush=True)
            return 1
        print(f"ok {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
