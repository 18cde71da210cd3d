"""The official `openai` Python package against `dsv2 serve` on loopback.

Usage: openai_client_test.py BASE_URL API_KEY   (BASE_URL like http://127.0.0.1:PORT/v1)
Every response goes through the package's own parsers (pydantic models); a field of the wrong
type or a missing required one fails here. Prints "N passed, N failed" and exits non-zero on a
failure.
"""
import sys
import traceback

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=120, max_retries=0)
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            results.append((name, traceback.format_exc()))
            print(f"FAIL {name}\n{traceback.format_exc()}")
        return fn
    return wrap


model = client.models.list().data[0].id
messages = [{"role": "system", "content": "You tell short stories."},
            {"role": "user", "content": "Tell me about a cat."}]


@check("models")
def _():
    models = client.models.list()
    assert [m.id for m in models.data] == [model]
    assert client.models.retrieve(model).id == model


@check("chat, not streamed")
def _():
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens <= 16


@check("chat, streamed with usage, equals the unstreamed reply")
def _():
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
    chunks = list(client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content, (text, whole.choices[0].message.content)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@check("completions: text, token ids, streamed")
def _():
    c = client.completions.create(model=model, prompt="The old house", max_tokens=8, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert c.object == "text_completion" and c.choices[0].finish_reason == "length"
    assert c.usage.completion_tokens == 8
    streamed = list(client.completions.create(model=model, prompt="The old house", max_tokens=8, temperature=0,
                                              stream=True, extra_body={"ignore_eos": True}))
    assert "".join(s.choices[0].text for s in streamed if s.choices) == c.choices[0].text
    ids = client.completions.create(model=model, prompt=[1, 400, 500, 600], max_tokens=4, temperature=0)
    assert ids.usage.prompt_tokens == 4


@check("logprobs: chat top_logprobs, completions with echo")
def _():
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 6
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token  # greedy: the most likely one
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
    c = client.completions.create(model=model, prompt="The old house", max_tokens=4, temperature=0, echo=True,
                                  logprobs=2, extra_body={"ignore_eos": True})
    lp = c.choices[0].logprobs
    assert c.choices[0].text.startswith("The old house")
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert len(lp.tokens) == c.usage.prompt_tokens + 4
    assert all(v <= 0 for v in lp.token_logprobs[1:])


@check("stop strings")
def _():
    full = client.completions.create(model=model, prompt="Once upon a time", max_tokens=24, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut = full[: full.index(stop)]
    for stops in (stop, ["zzzz", stop]):
        c = client.completions.create(model=model, prompt="Once upon a time", max_tokens=24, temperature=0,
                                      stop=stops, extra_body={"ignore_eos": True})
        assert c.choices[0].text == cut and c.choices[0].finish_reason == "stop", (c.choices[0].text, cut)
        chunks = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0,
                                                stop=stops, stream=True)
        list(chunks)


@check("seed reproducibility, and another seed differs")
def _():
    def run(seed):
        return client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=1.0,
                                              top_p=1.0, seed=seed, extra_body={"ignore_eos": True}).choices[0].message.content
    a, b, other = run(1234), run(1234), run(99)
    assert a == b, (a, b)
    assert a != other


@check("prefix reuse: cached_tokens of a follow-up turn")
def _():
    r1 = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    follow = messages + [{"role": "assistant", "content": r1.choices[0].message.content},
                         {"role": "user", "content": "And then?"}]
    r2 = client.chat.completions.create(model=model, messages=follow, max_tokens=8, temperature=0)
    assert r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens, r2.usage


@check("errors: 400 with the field, 404 model, 401 key")
def _():
    try:
        client.chat.completions.create(model=model, messages=messages, n=2)
        raise AssertionError("n=2 accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.body["param"] == "n", e.body
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found"
    bad = openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401


failed = sum(1 for _, error in results if error)
print(f"openai-client: {len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
