#!/usr/bin/env python3
"""GGUF files written by an independent writer (gguf-py, PyPI `gguf`) for dsv2's GGUF tests.

    python3 -m venv /tmp/ggufvenv && /tmp/ggufvenv/bin/pip install gguf numpy
    /tmp/ggufvenv/bin/python scripts/gguf-fixtures.py fixtures          # Tests/Fixtures/gguf/*
    /tmp/ggufvenv/bin/python scripts/gguf-fixtures.py model DIR TYPE OUT # one model, TYPE F32|F16|BF16|Q8_0|Q4_0,
        # or Q4_0+Q8_0 (Q4_0 with token_embd and output Q8_0: dsv2's q4 preset layout)
    /tmp/ggufvenv/bin/python scripts/gguf-fixtures.py check FILE.gguf VALUES.bin
        # dequantize every tensor with gguf.quants and compare with dsv2's values (see .ci/run)

A Hugging Face DeepSeek-V2 folder is laid out the way llama.cpp's `convert_hf_to_gguf.py`
lays out `deepseek2` (metadata keys, names, stacked experts, kv_b_proj split per head into
attn_k_b (transposed) and attn_v_b, routers and 1-D tensors F32, matrices quantized by gguf-py's
own `gguf.quants`, rows that are not whole blocks kept F16), written here from the layout, not
from the converter's code. The fixtures also exercise the older layout (one attn_kv_b,
`key_length` = qk_nope + qk_rope, experts one tensor each) and random blocks of every ggml type
dsv2 reads, with gguf-py's dequantized values next to them.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype=np.uint8)
        if info["dtype"] == "BF16":
            values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            values = raw.view(np.float16).astype(np.float32)
        elif info["dtype"] == "F32":
            values = raw.view(np.float32)
        else:
            raise SystemExit(f"{path}: {name}: dtype {info['dtype']} not handled")
        out[name] = values.reshape(info["shape"])
    return out


def token_list(folder, vocab_size):
    """tokens / token types the way the converter's get_vocab_base builds them from tokenizer.json."""
    tok = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    reverse = {i: t for t, i in tok["model"]["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            text = added[i]["content"]
            special = added[i]["special"] or (text.startswith("<｜") and text.endswith("｜>")) or (text.startswith("<|") and text.endswith("|>"))
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif i in reverse:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    return tokens, types


def add_tokenizer(w, folder, vocab_size):
    if not os.path.exists(os.path.join(folder, "tokenizer.json")):
        return
    tokens, types = token_list(folder, vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-llm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)


def add_hparams(w, c, split):
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(1)
    w.add_rope_freq_base(c.get("rope_theta", 10000))
    w.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-6))
    w.add_expert_used_count(c["num_experts_per_tok"])
    if c.get("n_group") is not None:
        w.add_expert_group_count(c["n_group"])
    if c.get("topk_group") is not None:
        w.add_expert_group_used_count(c["topk_group"])
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    rs = c.get("rope_scaling")
    if rs:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rs["factor"])
        w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_beta_fast(rs.get("beta_fast", 32))
        w.add_rope_scaling_yarn_beta_slow(rs.get("beta_slow", 1))
    w.add_leading_dense_block_count(c["first_k_dense_replace"])
    w.add_vocab_size(c["vocab_size"])
    if c.get("q_lora_rank") is not None:
        w.add_q_lora_rank(c["q_lora_rank"])
    rank, rope = c["kv_lora_rank"], c["qk_rope_head_dim"]
    w.add_kv_lora_rank(rank)
    if split:
        w.add_key_length(rank + rope)
        w.add_value_length(rank)
        w.add_key_length_mla(c["qk_nope_head_dim"] + rope)
        w.add_value_length_mla(c["v_head_dim"])
    else:  # the layout before the MLA split: per-head widths
        w.add_key_length(c["qk_nope_head_dim"] + rope)
        w.add_value_length(c["v_head_dim"])
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_expert_count(c["n_routed_experts"])
    w.add_expert_shared_count(c.get("n_shared_experts") or 0)
    w.add_expert_weights_scale(c.get("routed_scaling_factor", 1.0))
    if c.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(rope)
    if rs and rs.get("mscale_all_dim") is not None:
        w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])


HF_TO_GGUF = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.q_a_proj": "attn_q_a", "self_attn.q_a_layernorm": "attn_q_a_norm",
    "self_attn.q_b_proj": "attn_q_b", "self_attn.kv_a_proj_with_mqa": "attn_kv_a_mqa",
    "self_attn.kv_a_layernorm": "attn_kv_a_norm", "self_attn.kv_b_proj": "attn_kv_b", "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.gate": "ffn_gate_inp",
    "mlp.shared_experts.gate_proj": "ffn_gate_shexp", "mlp.shared_experts.up_proj": "ffn_up_shexp",
    "mlp.shared_experts.down_proj": "ffn_down_shexp",
}


def gguf_tensors(c, weights, split, stacked, tied):
    """(gguf name, float32 array in PyTorch order) in the converter's layout."""
    out = [("token_embd.weight", weights["model.embed_tokens.weight"])]
    heads, nope, vdim = c["num_attention_heads"], c["qk_nope_head_dim"], c["v_head_dim"]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        names = sorted(n for n in weights if n.startswith(p))
        experts = {}
        for n in names:
            rest = n[len(p):-len(".weight")]
            if ".experts." in rest:
                _, _, e, kind = rest.split(".")
                experts.setdefault(kind, {})[int(e)] = weights[n]
                continue
            g = HF_TO_GGUF[rest]
            if g == "attn_kv_b" and split:
                kv = weights[n].reshape(heads, nope + vdim, -1)
                out.append((f"blk.{l}.attn_k_b.weight", np.ascontiguousarray(kv[:, :nope, :].transpose(0, 2, 1))))
                out.append((f"blk.{l}.attn_v_b.weight", np.ascontiguousarray(kv[:, nope:, :])))
            else:
                out.append((f"blk.{l}.{g}.weight", weights[n]))
        for kind in ("down_proj", "gate_proj", "up_proj"):
            if kind not in experts:
                continue
            short = kind.replace("_proj", "")
            if stacked:
                out.append((f"blk.{l}.ffn_{short}_exps.weight", np.stack([experts[kind][e] for e in sorted(experts[kind])])))
            else:
                out += [(f"blk.{l}.ffn_{short}.{e}.weight", experts[kind][e]) for e in sorted(experts[kind])]
    out.append(("output_norm.weight", weights["model.norm.weight"]))
    if not tied:
        out.append(("output.weight", weights["lm_head.weight"]))
    return out


FILE_TYPES = {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_0+Q8_0": 2}


def write_model(folder, qtype, path, split=True, stacked=True, tied=False):
    c = json.load(open(os.path.join(folder, "config.json")))
    weights = read_safetensors(os.path.join(folder, "model.safetensors"))
    w = gguf.GGUFWriter(path, "deepseek2")
    w.add_type("model")
    w.add_name(os.path.basename(os.path.normpath(folder)))
    add_hparams(w, c, split)
    w.add_file_type(FILE_TYPES[qtype])
    add_tokenizer(w, folder, c["vocab_size"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, data in gguf_tensors(c, weights, split, stacked, tied):
        data = np.ascontiguousarray(data.astype(np.float32))
        kind = getattr(Q, qtype.split("+")[0])
        if qtype == "Q4_0+Q8_0" and name in ("token_embd.weight", "output.weight"):
            kind = Q.Q8_0
        if data.ndim <= 1 or name.endswith("_norm.weight") or ".ffn_gate_inp." in name:
            kind = Q.F32
        elif kind in (Q.Q8_0, Q.Q4_0) and data.shape[-1] % 32 != 0:
            kind = Q.F16
        if kind == Q.F32:
            w.add_tensor(name, data)
        elif kind == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def random_blocks(rng, qtype, n_blocks):
    """Random blocks whose scale fields are finite f16 (or f32) values of moderate size."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def put_half(col):
        raw[:, col:col + 2] = rng.uniform(-2, 2, n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    if qtype in (Q.Q4_0, Q.Q5_0, Q.Q8_0):
        put_half(0)
    elif qtype in (Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q5_K):
        put_half(0)
        put_half(2)
    elif qtype == Q.Q2_K:
        put_half(80)
        put_half(82)
    elif qtype == Q.Q3_K:
        put_half(108)
    elif qtype == Q.Q6_K:
        put_half(208)
    elif qtype == Q.Q8_K:
        raw[:, 0:4] = rng.uniform(-2, 2, n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
    return raw


def write_blocks(path):
    rng = np.random.default_rng(20261207)
    w = gguf.GGUFWriter(path, "dsv2-block-tests")
    for qtype in (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K):
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n = 64 if block_size == 32 else 8
        raw = random_blocks(rng, qtype, n)
        if qtype == Q.Q8_K:
            # gguf.quants has no Q8_K: the definition (ggml's block_q8_K) is d·q, f32 d first.
            d = raw[:, 0:4].copy().view(np.float32)
            values = (d * raw[:, 4:260].view(np.int8).astype(np.float32)).reshape(-1)
        else:
            values = gguf.quants.dequantize(raw, qtype).reshape(-1).astype(np.float32)
        w.add_tensor(f"{qtype.name}.blocks", raw.reshape(1, -1), raw_dtype=qtype)
        w.add_tensor(f"{qtype.name}.values", values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_vocab(folder, path):
    c = json.load(open(os.path.join(folder, "config.json")))
    w = gguf.GGUFWriter(path, "deepseek2")
    add_tokenizer(w, folder, c["vocab_size"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def fixtures():
    out = os.path.join(FIXTURES, "gguf")
    os.makedirs(out, exist_ok=True)
    write_model(os.path.join(FIXTURES, "lite-greedy"), "Q8_0", os.path.join(out, "lite-greedy-q8_0.gguf"))
    write_model(os.path.join(FIXTURES, "v2-grouped"), "BF16", os.path.join(out, "v2-grouped-bf16-unsplit.gguf"),
                split=False, stacked=False)
    write_model(os.path.join(FIXTURES, "lite-fp32-norope"), "F32", os.path.join(out, "lite-fp32-norope-f32-tied.gguf"),
                tied=True)
    write_blocks(os.path.join(out, "blocks.gguf"))
    write_vocab(os.path.join(FIXTURES, "tiny-dsv2"), os.path.join(out, "tiny-dsv2-vocab.gguf"))


def check(path, values_path):
    """Every tensor of `path` dequantized by gguf-py equals dsv2's values (`dsv2 export --dump-values`)."""
    reader = gguf.GGUFReader(path)
    ours = open(values_path, "rb").read()
    offset, failures = 0, 0
    for t in reader.tensors:
        theirs = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        mine = np.frombuffer(ours, dtype=np.float32, count=theirs.size, offset=offset)
        offset += theirs.size * 4
        if not np.array_equal(theirs.view(np.uint32), mine.view(np.uint32)):
            failures += 1
            print(f"{t.name}: {t.tensor_type.name} differs (max |diff| {np.max(np.abs(theirs - mine))})")
    print(f"gguf-py check of {path}: {len(reader.tensors) - failures} passed, {failures} failed")
    return failures == 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fixtures":
        fixtures()
    elif len(sys.argv) == 5 and sys.argv[1] == "model":
        write_model(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2], sys.argv[3]) else 1)
    else:
        raise SystemExit(__doc__)
