"""The encoder: shapes, masks (padding, packed documents), MLM loss, embedding, training signal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from codemlm.config import MODEL_PRESETS, ModelConfig
from codemlm.model import IGNORE_INDEX, CodeEncoder, build_attention_mask

torch.set_num_threads(1)

VOCAB = 97
PAD = 0


def tiny(**overrides) -> CodeEncoder:
    torch.manual_seed(0)
    fields = {"vocab_size": VOCAB, **overrides}
    return CodeEncoder(ModelConfig.from_preset("tiny", **fields)).eval()


def random_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, VOCAB, (batch, length), generator=g)


def test_forward_shapes_and_logits():
    model = tiny()
    ids = random_ids(3, 17)
    hidden = model(ids)
    assert hidden.shape == (3, 17, 64)
    assert model.mlm_logits(hidden).shape == (3, 17, VOCAB)
    assert torch.isfinite(hidden).all()


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_parameter_count_matches_config(preset):
    config = MODEL_PRESETS[preset]
    model = CodeEncoder(config)
    assert model.num_parameters() == config.num_parameters()
    # Every parameter is counted once: the decoder is the embedding, not a copy of it.
    assert len(list(model.parameters())) == len(model.state_dict())


def test_base_parameter_count_without_allocating():
    config = MODEL_PRESETS["base"]
    with torch.device("meta"):
        model = CodeEncoder(config)
    assert model.num_parameters() == config.num_parameters()
    assert 100e6 < model.num_parameters() < 150e6


def test_tied_embeddings_share_one_tensor_and_gradient():
    model = tiny().train()
    ids = random_ids(2, 8)
    hidden = model(ids)
    logits = model.mlm_logits(hidden)
    # The decoder is exactly the transposed embedding after the head transform.
    expected = model.head(hidden) @ model.tok_emb.weight.T
    torch.testing.assert_close(logits, expected)
    assert "tok_emb.weight" in model.state_dict()
    assert not any("decoder" in name for name in model.state_dict())
    # The gradient reaches the embedding through the output side for a token never input.
    unused_token = 3
    assert not (ids == unused_token).any()
    F.cross_entropy(logits.reshape(-1, VOCAB), torch.full((16,), unused_token)).backward()
    grad = model.tok_emb.weight.grad
    assert grad is not None and grad[unused_token].abs().sum() > 0


def test_padding_does_not_change_real_positions():
    model = tiny()
    ids = random_ids(1, 12)
    unpadded = model(ids)
    padded_ids = torch.cat([ids, torch.full((1, 5), PAD)], dim=1)
    mask = torch.cat([torch.ones(1, 12, dtype=torch.bool), torch.zeros(1, 5, dtype=torch.bool)], dim=1)
    padded = model(padded_ids, attention_mask=mask)
    torch.testing.assert_close(padded[:, :12], unpadded, atol=1e-5, rtol=1e-4)
    # Without the mask the padding leaks in: the test can tell the difference.
    leaked = model(padded_ids)
    assert not torch.allclose(leaked[:, :12], unpadded, atol=1e-4)


def test_batch_of_different_lengths_matches_one_by_one():
    model = tiny()
    a, b = random_ids(1, 9, seed=2), random_ids(1, 4, seed=3)
    ids = torch.full((2, 9), PAD)
    ids[0], ids[1, :4] = a[0], b[0]
    mask = ids != PAD
    batched = model(ids, attention_mask=mask)
    torch.testing.assert_close(batched[0], model(a)[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched[1, :4], model(b)[0], atol=1e-5, rtol=1e-4)


def test_document_ids_isolate_packed_documents():
    model = tiny()
    doc_a, doc_b = random_ids(1, 7, seed=4), random_ids(1, 6, seed=5)
    packed = torch.cat([doc_a, doc_b], dim=1)  # [1, 13]
    docs = torch.tensor([[0] * 7 + [1] * 6])
    out = model(packed, document_ids=docs)
    torch.testing.assert_close(out[:, :7], model(doc_a), atol=1e-5, rtol=1e-4)
    # Changing doc B leaves doc A untouched.
    other_b = random_ids(1, 6, seed=6)
    out2 = model(torch.cat([doc_a, other_b], dim=1), document_ids=docs)
    torch.testing.assert_close(out2[:, :7], out[:, :7], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(out2[:, 7:], out[:, 7:])
    # RoPE is relative, so doc B at offset 7 equals doc B alone.
    torch.testing.assert_close(out[:, 7:], model(doc_b), atol=1e-4, rtol=1e-3)


def test_document_ids_combined_with_padding():
    model = tiny()
    doc_a, doc_b = random_ids(1, 5, seed=7), random_ids(1, 4, seed=8)
    ids = torch.cat([doc_a, doc_b, torch.full((1, 3), PAD)], dim=1)  # [1, 12]
    docs = torch.tensor([[0] * 5 + [1] * 4 + [1] * 3])  # padding carries the last doc's id
    mask = ids != PAD
    out = model(ids, attention_mask=mask, document_ids=docs)
    torch.testing.assert_close(out[:, 5:9], model(doc_b), atol=1e-4, rtol=1e-3)
    assert torch.isfinite(out).all()


def test_fully_padded_rows_give_no_nan():
    model = tiny()
    ids = random_ids(2, 6)
    ids[1] = PAD
    mask = ids != PAD
    out = model(ids, attention_mask=mask)
    assert torch.isfinite(out).all()
    emb = model.embed(ids, mask)
    assert torch.isfinite(emb).all()
    # Pad rows under a document mask whose id matches no real token: still finite.
    docs = torch.tensor([[0, 0, 0, 1, 1, 1], [5, 5, 5, 5, 5, 5]])
    assert torch.isfinite(model(ids, attention_mask=mask, document_ids=docs)).all()


def test_attention_mask_shapes():
    mask = torch.tensor([[True, True, False]])
    assert build_attention_mask(None, None, 3) is None
    keys = build_attention_mask(mask, None, 3)
    assert keys is not None and keys.shape == (1, 1, 1, 3)
    full = build_attention_mask(mask, torch.tensor([[0, 1, 1]]), 3)
    assert full is not None and full.shape == (1, 1, 3, 3)
    assert full[0, 0].tolist() == [[True, False, False], [False, True, False], [False, True, True]]


def test_mlm_loss_uses_only_masked_positions_and_backprops():
    model = tiny().train()
    ids = random_ids(2, 10)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 3], labels[1, 7], labels[1, 8] = 11, 12, 13
    out = model.mlm_loss(ids, None, labels)
    assert out.logits.shape == (3, VOCAB)
    assert out.targets.tolist() == [11, 12, 13]
    assert out.positions.sum() == 3 and out.positions[0, 3] and out.positions[1, 8]
    expected = F.cross_entropy(model.mlm_logits(model(ids)).reshape(-1, VOCAB), labels.reshape(-1))
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    qkv_grad = model.get_parameter("blocks.0.attn.qkv.weight").grad
    assert qkv_grad is not None and qkv_grad.abs().sum() > 0


def test_mlm_loss_with_nothing_masked_is_zero_and_differentiable():
    model = tiny().train()
    ids = random_ids(1, 5)
    out = model.mlm_loss(ids, None, torch.full_like(ids, IGNORE_INDEX))
    assert out.loss.item() == 0.0 and out.logits.shape == (0, VOCAB)
    out.loss.backward()


def test_embed_is_normalized_and_padding_invariant():
    model = tiny()
    ids = random_ids(1, 8)
    emb = model.embed(ids)
    assert emb.shape == (1, 64)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1))
    padded = torch.cat([ids, torch.full((1, 4), PAD)], dim=1)
    mask = padded != PAD
    torch.testing.assert_close(model.embed(padded, mask), emb, atol=1e-5, rtol=1e-4)
    other = model.embed(random_ids(1, 8, seed=9))
    assert (emb @ other.T).item() < 0.9999


def test_long_context_1024_and_rope_extension():
    model = tiny(max_seq_len=1024)
    ids = random_ids(1, 1024)
    with torch.no_grad():
        out = model(ids)
    assert out.shape == (1, 1024, 64) and torch.isfinite(out).all()
    # Beyond the configured context the rotary table grows instead of failing.
    short = tiny(max_seq_len=16)
    with torch.no_grad():
        assert short(random_ids(1, 40)).shape == (1, 40, 64)
    assert short.rope.cos.shape[0] == 40


def test_rope_tables_are_not_saved():
    model = tiny()
    assert not any("rope" in name for name in model.state_dict())


def test_flops_per_token_counts_attention_and_masked_head():
    model = tiny()
    c = model.config
    full = model.flops_per_token(256)
    assert full > 6 * (model.num_parameters() - c.vocab_size * c.dim)
    assert model.flops_per_token(512) - full == pytest.approx(12 * c.n_layers * c.dim * 256)
    assert model.flops_per_token(256, masked_fraction=0.15) < full


def test_dropout_config_is_used_in_training_only():
    model = tiny(dropout=0.5)
    ids = random_ids(1, 8)
    torch.testing.assert_close(model(ids), model(ids))
    model.train()
    assert not torch.allclose(model(ids), model(ids))


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=VOCAB)).train()
    ids = random_ids(4, 32, seed=10)
    g = torch.Generator().manual_seed(11)
    chosen = torch.rand(ids.shape, generator=g) < 0.3
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    inputs = torch.where(chosen, torch.full_like(ids, 4), ids)  # 4 = <mask>
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.mlm_loss(inputs, None, labels).loss.item()
    for _ in range(60):
        loss = model.mlm_loss(inputs, None, labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = model.mlm_loss(inputs, None, labels).loss.item()
    assert first > 4.0  # about ln(97) at init
    assert final < 0.25 * first


@pytest.mark.parametrize("with_peer", [False, True])
def test_training_benchmark_reports_one_json_line(capsys, with_peer):
    import json

    from training import bench

    if with_peer:
        pytest.importorskip("transformers", reason="the benchmark peer is an optional extra")
    argv = ["--preset", "tiny", "--batch-size", "2", "--seq-len", "32", "--steps", "1", "--warmup", "0"]
    assert bench.main([*argv, "--device", "cpu"] + ([] if with_peer else ["--no-peer"])) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (result,) = report["results"]
    assert result["preset"] == "tiny" and result["seq_len"] == 32
    assert result["ours"]["params"] == MODEL_PRESETS["tiny"].num_parameters()
    assert result["ours"]["tokens_per_s"] > 0 and result["ours"]["mfu"] > 0
    if with_peer:
        assert result["peer"]["params"] == result["ours"]["params"]  # the same shape
        assert result["ratio_tokens_per_s"] > 0
    else:
        assert result["peer"] is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_step_matches_cpu_and_pads_correctly():
    model = tiny(max_seq_len=1024)
    ids = random_ids(2, 1024)
    mask = torch.ones(2, 1024, dtype=torch.bool)
    mask[1, 700:] = False
    with torch.no_grad():
        reference = model(ids, mask)
    gpu = model.cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = gpu(ids.cuda(), mask.cuda()).float().cpu()
    torch.testing.assert_close(out[0], reference[0], atol=0.1, rtol=0.05)
    torch.testing.assert_close(out[1, :700], reference[1, :700], atol=0.1, rtol=0.05)
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, IGNORE_INDEX)).cuda()
    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = gpu.mlm_loss(ids.cuda(), mask.cuda(), labels).loss
    loss.backward()
    assert torch.isfinite(loss) and gpu.tok_emb.weight.grad is not None
