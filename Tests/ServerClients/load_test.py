"""A bounded load test of `dsv2 serve` over loopback (standard library only).

Usage: load_test.py PORT SERVER_PID API_KEY
200 requests from 8 concurrent clients: ~10% malformed bodies (must get a 400 in OpenAI's error
shape), ~10% clients that drop the connection halfway through a stream, the rest well-formed
greedy requests whose text must equal the answer each got alone before the run. Then the
server must still answer, hold no sequence, and its RSS after the run must be within 5% of its
RSS after the first request. Every socket has a timeout; the whole run is capped.
"""
import http.client
import json
import random
import socket
import sys
import threading
import time

PORT, PID, KEY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
HOST = "127.0.0.1"
REQUESTS, CLIENTS, DEADLINE = 200, 8, time.monotonic() + 600
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def post(path, body, timeout=120):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


PROMPTS = ["The sea was", "In the village", "She opened the door", "Once upon a time", "The dog ran"]


def well_formed(i):
    prompt = PROMPTS[i % len(PROMPTS)]
    if i % 2:
        return "/v1/completions", {"prompt": prompt, "max_tokens": 12, "temperature": 0, "ignore_eos": True}
    return "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}], "max_tokens": 12,
                                    "temperature": 0, "ignore_eos": True}


def text_of(path, reply):
    choice = json.loads(reply)["choices"][0]
    assert choice["finish_reason"] == "length", choice
    return choice["text"] if path == "/v1/completions" else choice["message"]["content"]


MALFORMED = ['{"prompt": ', '{"messages": "hi"}', '[]', '{"prompt": "x", "max_tokens": -1}', 'not json',
             '{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', '{"prompt": [1, -5]}']


def disconnecting(rng):
    body = json.dumps({"prompt": "A long story", "max_tokens": 400, "ignore_eos": True, "stream": True})
    s = socket.create_connection((HOST, PORT), timeout=60)
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    s.sendall(request.encode())
    if rng.random() < 0.5:  # half of them wait for the stream to start
        received = b""
        while b"data: " not in received:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    s.close()


expected = {}
first_status, first_reply = post(*(lambda p, b: (p, json.dumps(b)))(*well_formed(0)))
assert first_status == 200, first_reply
time.sleep(0.5)
rss_first = rss_kib()
for i in range(len(PROMPTS) * 2):
    path, body = well_formed(i)
    status, reply = post(path, json.dumps(body))
    assert status == 200, reply
    expected[(path, body.get("prompt") or body["messages"][0]["content"])] = text_of(path, reply)

lock = threading.Lock()
counts = {"ok": 0, "bad_request": 0, "disconnected": 0}
failures = []
next_request = [0]


def client(seed):
    rng = random.Random(seed)
    while time.monotonic() < DEADLINE:
        with lock:
            if next_request[0] >= REQUESTS:
                return
            i = next_request[0]
            next_request[0] += 1
        roll = rng.random()
        try:
            if roll < 0.1:
                status, reply = post("/v1/completions" if i % 2 else "/v1/chat/completions", rng.choice(MALFORMED))
                error = json.loads(reply)["error"]
                assert status == 400 and error["type"] == "invalid_request_error", (status, reply)
                key = "bad_request"
            elif roll < 0.2:
                disconnecting(rng)
                key = "disconnected"
            else:
                path, body = well_formed(i)
                status, reply = post(path, json.dumps(body))
                assert status == 200, (status, reply)
                want = expected[(path, body.get("prompt") or body["messages"][0]["content"])]
                assert text_of(path, reply) == want, (reply, want)
                key = "ok"
            with lock:
                counts[key] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                failures.append(f"request {i}: {e!r}")


start = time.monotonic()
threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=max(1, DEADLINE - time.monotonic()))
elapsed = time.monotonic() - start

# Idle again: no sequence left, and the server still answers.
for _ in range(100):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    conn.close()
    if "dsv2_sequences_active 0\n" in metrics and "dsv2_sequences_queued 0\n" in metrics:
        break
    time.sleep(0.1)
else:
    failures.append("sequences still active after the run")
status, reply = post(*(lambda p, b: (p, json.dumps(b)))(*well_formed(0)))
if status != 200:
    failures.append(f"after the run: {status} {reply}")
time.sleep(0.5)
rss_after = rss_kib()
growth = (rss_after - rss_first) / rss_first
print(f"load: {sum(counts.values())} requests in {elapsed:.1f} s ({counts}), "
      f"RSS after the first request {rss_first} KiB, after the run {rss_after} KiB ({growth:+.1%})")
if sum(counts.values()) != REQUESTS:
    failures.append(f"only {sum(counts.values())} of {REQUESTS} requests done")
if growth > 0.05:
    failures.append(f"RSS grew {growth:.1%} (> 5%)")
for failure in failures[:20]:
    print("FAIL", failure)
print(f"load-test: {0 if failures else 1} passed, {1 if failures else 0} failed")
sys.exit(1 if failures else 0)
