// Cairn over grpc-web, with the client a web page uses: Connect's grpc-web transport (binary
// format) over fetch. Usage: node grpcweb.test.mjs http://127.0.0.1:PORT (after generate.mjs).
// Every call carries a deadline; waits end on a condition or on that deadline, never on a timer.
// Connect has no grpc-web-text (its useBinaryFormat: false means grpc-web+json, which tonic-web
// does not serve); tests/tests/grpcweb.rs covers grpc-web-text with hand-made requests.

import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { Browser } from "./gen/browserpb/browser_pb.js";
import { KV, Lease, WatchCreateRequestSchema } from "./gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "./gen/mvccpb/kv_pb.js";

const endpoint = process.argv[2];
if (!endpoint) {
  console.error("usage: node grpcweb.test.mjs <client URL, e.g. http://127.0.0.1:2379>");
  process.exit(2);
}

/** The deadline of one unary call. */
const CALL_MS = 10_000;
/** The deadline of one streaming scenario. */
const STREAM_MS = 20_000;
const COMPACTED = "etcdserver: mvcc: required revision has been compacted";

const transport = createGrpcWebTransport({ baseUrl: endpoint, useBinaryFormat: true });
const kv = createClient(KV, transport);
const lease = createClient(Lease, transport);
const browser = createClient(Browser, transport);
const call = { timeoutMs: CALL_MS };

const text = new TextEncoder();
const bytes = (s) => text.encode(s);
const str = (b) => new TextDecoder().decode(b);

/** A key prefix no other scenario (or earlier run) uses. */
const prefix = (name) => `grpcweb/${name}/${process.pid}-${Date.now()}/`;

/** etcd's range end for "every key with this prefix". */
function prefixEnd(p) {
  const end = bytes(p);
  end[end.length - 1] += 1;
  return end;
}

/** Runs `body` with an AbortSignal that fires at the scenario deadline or when `body` ends. */
async function withDeadline(body) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`scenario deadline of ${STREAM_MS} ms passed`)), STREAM_MS);
  try {
    return await body(controller.signal, controller);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

test("unary Put and Range, with the header revision", async () => {
  const key = `${prefix("unary")}k`;
  const put = await kv.put({ key: bytes(key), value: bytes("v1") }, call);
  const revision = put.header.revision;
  assert.ok(revision > 0n, `put revision ${revision}`);
  assert.ok(put.header.clusterId !== 0n && put.header.memberId !== 0n, "the header names the cluster and member");

  const range = await kv.range({ key: bytes(key) }, call);
  assert.equal(range.count, 1n);
  assert.equal(range.kvs.length, 1);
  assert.equal(str(range.kvs[0].key), key);
  assert.equal(str(range.kvs[0].value), "v1");
  assert.equal(range.kvs[0].createRevision, revision);
  assert.equal(range.kvs[0].modRevision, revision);
  assert.equal(range.kvs[0].version, 1n);
  assert.ok(range.header.revision >= revision, `range header ${range.header.revision} < put ${revision}`);

  const second = await kv.put({ key: bytes(key), value: bytes("v2"), prevKv: true }, call);
  assert.equal(second.header.revision, revision + 1n, "nothing else writes meanwhile");
  assert.equal(str(second.prevKv.value), "v1");
  const old = await kv.range({ key: bytes(key), revision }, call);
  assert.equal(str(old.kvs[0].value), "v1", "a range at the first revision sees the first value");
});

test("Browser.Watch streams the created response, then the events of the prefix", async () => {
  const p = prefix("watch");
  const expected = ["a", "b", "c"];
  await withDeadline(async (signal) => {
    const responses = browser.watch({ key: bytes(p), rangeEnd: prefixEnd(p), prevKv: true }, { signal });
    let created;
    let writes;
    const events = [];
    for await (const resp of responses) {
      assert.ok(!resp.canceled, `unexpected cancel: ${resp.cancelReason}`);
      if (!created) {
        assert.ok(resp.created, "the first response is the created one");
        assert.equal(resp.events.length, 0);
        created = resp;
        // Written only now, so every event happens after the watcher exists. A key outside the
        // prefix goes first: its event must not arrive.
        writes = (async () => {
          await kv.put({ key: bytes(`${p.slice(0, -1)}~outside`), value: bytes("x") }, call);
          for (const name of expected) {
            await kv.put({ key: bytes(p + name), value: bytes(`value-${name}`) }, call);
          }
          await kv.put({ key: bytes(`${p}a`), value: bytes("value-a2") }, call);
        })();
        continue;
      }
      assert.equal(resp.watchId, created.watchId);
      assert.ok(resp.header.revision > created.header.revision);
      events.push(...resp.events);
      if (events.length >= expected.length + 1) break;
    }
    await writes;
    assert.deepEqual(
      events.map((e) => [e.type, str(e.kv.key), str(e.kv.value)]),
      [
        ...expected.map((name) => [Event_EventType.PUT, p + name, `value-${name}`]),
        [Event_EventType.PUT, `${p}a`, "value-a2"],
      ],
    );
    const revisions = events.map((e) => e.kv.modRevision);
    assert.deepEqual(revisions, [...revisions].sort((x, y) => (x < y ? -1 : 1)), "events in revision order");
    assert.equal(str(events[3].prevKv.value), "value-a", "prev_kv as asked");
  });
});

test("Browser.Watch from a compacted revision is canceled by the server and ends", async () => {
  const key = `${prefix("compacted")}k`;
  await kv.put({ key: bytes(key), value: bytes("1") }, call);
  const last = await kv.put({ key: bytes(key), value: bytes("2") }, call);
  const compactRevision = last.header.revision;
  await kv.compact({ revision: compactRevision, physical: true }, call);

  await withDeadline(async (signal) => {
    const request = create(WatchCreateRequestSchema, { key: bytes(key), startRevision: 1n });
    const responses = [];
    // The loop ends only if the server ends the stream; the deadline fails it otherwise.
    for await (const resp of browser.watch(request, { signal })) {
      responses.push(resp);
    }
    assert.equal(responses.length, 2, `responses: ${JSON.stringify(responses.map((r) => [r.created, r.canceled]))}`);
    assert.ok(responses[0].created && !responses[0].canceled);
    assert.ok(responses[1].canceled, "then the cancel");
    assert.equal(responses[1].compactRevision, compactRevision);
    assert.equal(responses[1].watchId, responses[0].watchId);
  });
});

test("Browser.KeepAlive keeps a short lease alive past its TTL", async () => {
  // The server raises TTL 1 to its minimum (1.5 election timeouts, 2 s by default).
  const granted = await lease.leaseGrant({ TTL: 1n }, call);
  const id = granted.ID;
  const ttl = granted.TTL;
  assert.ok(ttl >= 1n, `granted TTL ${ttl}`);
  const key = `${prefix("lease")}k`;
  await kv.put({ key: bytes(key), value: bytes("held"), lease: id }, call);

  const started = Date.now();
  const ttlMs = Number(ttl) * 1000;
  await withDeadline(async (signal) => {
    let answers = 0;
    for await (const resp of browser.keepAlive({ ID: id }, { signal })) {
      assert.equal(resp.ID, id);
      assert.equal(resp.TTL, ttl, "each renewal grants the whole TTL again");
      answers += 1;
      // Past the TTL with a margin of half a renewal: an unrenewed lease would be gone.
      if (answers >= 2 && Date.now() - started > ttlMs + 500) break;
    }
    assert.ok(answers >= 2, `${answers} renewals`);
  });
  const elapsed = Date.now() - started;
  assert.ok(elapsed > ttlMs, `checked after ${elapsed} ms, TTL ${ttlMs} ms`);
  const alive = await lease.leaseTimeToLive({ ID: id }, call);
  assert.ok(alive.TTL > 0n, `lease alive after ${elapsed} ms: TTL ${alive.TTL}`);
  const held = await kv.range({ key: bytes(key) }, call);
  assert.equal(held.count, 1n, "the key attached to the lease is still there");
  await lease.leaseRevoke({ ID: id }, call);
});

test("Browser.KeepAlive of a lease that is gone answers TTL 0 once and ends", async () => {
  const granted = await lease.leaseGrant({ TTL: 60n }, call);
  await lease.leaseRevoke({ ID: granted.ID }, call);
  await withDeadline(async (signal) => {
    const responses = [];
    for await (const resp of browser.keepAlive({ ID: granted.ID }, { signal })) {
      responses.push(resp);
    }
    assert.equal(responses.length, 1);
    assert.equal(responses[0].ID, granted.ID);
    assert.equal(responses[0].TTL, 0n);
  });
});

test("errors carry etcd's gRPC code and message", async () => {
  const key = `${prefix("error")}k`;
  await kv.put({ key: bytes(key), value: bytes("1") }, call);
  const last = await kv.put({ key: bytes(key), value: bytes("2") }, call);
  await kv.compact({ revision: last.header.revision }, call);
  await assert.rejects(kv.range({ key: bytes(key), revision: last.header.revision - 1n }, call), (error) => {
    assert.ok(error instanceof ConnectError, `a ConnectError: ${error}`);
    assert.equal(error.code, Code.OutOfRange);
    assert.equal(error.rawMessage, COMPACTED);
    return true;
  });
  await assert.rejects(kv.put({ key: new Uint8Array(), value: bytes("v") }, call), (error) => {
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.rawMessage, "etcdserver: key is not provided");
    return true;
  });
});
