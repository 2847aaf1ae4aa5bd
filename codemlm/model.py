"""The code encoder: a modern bidirectional transformer with an MLM head and a pooled embedding.

One readable file in the style of nanoGPT/litgpt. Shapes in comments use
B = batch, T = sequence length, D = model width, H = heads, Dh = head width, V = vocabulary,
N = number of masked positions.

Choices (ModernBERT-like): pre-norm blocks with bias-free LayerNorm, rotary position
embeddings, ``scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU), a
GeGLU MLP, no biases anywhere, a final norm, and input/output embeddings tied by construction
(the decoder *is* the embedding matrix, so there is exactly one tensor to save). The MLM head
runs only at masked positions, which saves most of the vocabulary projection at 15-30% masking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codemlm.config import ModelConfig
from codemlm.masking import IGNORE_INDEX  # labels with no MLM target: the collator owns the convention

__all__ = ["IGNORE_INDEX", "CodeEncoder", "MLMOutput", "RotaryEmbedding", "build_attention_mask"]



@dataclass
class MLMOutput:
    loss: torch.Tensor  # scalar, mean cross-entropy over masked positions
    logits: torch.Tensor  # Float[N, V], only the masked positions
    targets: torch.Tensor  # Long[N]
    positions: torch.Tensor  # Bool[B, T], where the N logits came from (row-major order)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary position embeddings, built for ``max_seq_len``, grown on demand."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.build_cache(max_seq_len)

    def build_cache(self, seq_len: int, device: torch.device | str | None = None) -> None:
        # Non-persistent buffers: derived from the config, never stored in a checkpoint.
        inv_freq = 1.0 / (
            self.theta
            ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device) / self.head_dim)
        )  # [Dh/2]
        t = torch.arange(seq_len, dtype=torch.float32, device=device)  # [T]
        freqs = torch.outer(t, inv_freq)  # [T, Dh/2]
        self.register_buffer("cos", freqs.cos(), persistent=False)
        self.register_buffer("sin", freqs.sin(), persistent=False)

    def forward(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        if seq_len > self.cos.shape[0]:
            # Longer than the configured context: extend (RoPE extrapolates, quality may not).
            self.build_cache(seq_len, device=self.cos.device)
        return self.cos[:seq_len], self.sin[:seq_len]  # [T, Dh/2] each


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :Dh/2], x[..., Dh/2:]) by position-dependent angles. x: [B, H, T, Dh]."""
    # In x's dtype (bf16 under autocast), as HF's ModernBERT and litgpt do: fp32 copies of
    # q and k would add memory traffic to every layer.
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)  # [B, H, T, Dh/2] each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def build_attention_mask(
    attention_mask: torch.Tensor | None, document_ids: torch.Tensor | None, seq_len: int
) -> torch.Tensor | None:
    """A boolean SDPA mask (True = may attend), or None when every token sees every token.

    attention_mask: Bool[B, T], True at real tokens. document_ids: Long[B, T], tokens attend
    only within their own document (packed sequences). Returns [B, 1, 1, T] for padding alone
    (broadcast over queries, cheap) or [B, 1, T, T] when documents are involved.
    Every query row keeps at least one allowed key, so softmax never sees a row of -inf (NaN).
    """
    if document_ids is None:
        if attention_mask is None:
            return None
        keys = attention_mask.bool()  # [B, T]
        # A sequence of padding only would mask every key: let it see all of its (padding) keys,
        # which gives finite, ignorable outputs instead of NaN.
        keys = keys | ~keys.any(dim=-1, keepdim=True)
        return keys[:, None, None, :]  # [B, 1, 1, T]
    same_doc = document_ids[:, :, None] == document_ids[:, None, :]  # [B, T, T]
    if attention_mask is not None:
        same_doc = same_doc & attention_mask.bool()[:, None, :]
    # Padding queries may match no real key; they see themselves so the row stays finite.
    eye = torch.eye(seq_len, dtype=torch.bool, device=same_doc.device)
    return (same_doc | eye)[:, None, :, :]  # [B, 1, T, T]


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # [B, T, D] each
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = k.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, Dh]
        y = y.transpose(1, 2).reshape(B, T, D)  # [B, T, D]
        return self.out(y)


class GatedMLP(nn.Module):
    """GeGLU: out(gelu(x W_gate) * (x W_up))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.dim, 2 * config.mlp_hidden, bias=False)
        self.out = nn.Linear(config.mlp_hidden, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)  # [B, T, M] each
        return self.out(F.gelu(gate) * up)  # [B, T, D]


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.attn = SelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.mlp = GatedMLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, mask))
        x = x + self.drop(self.mlp(self.mlp_norm(x)))
        return x  # [B, T, D]


class MLMHead(nn.Module):
    """dense + GELU + norm; the vocabulary projection is the tied embedding (in CodeEncoder)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.dim, config.dim, bias=False)
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


class CodeEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.rope = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.head = MLMHead(config)
        self.reset_parameters()

    # ----------------------------------------------------------------- init and counting
    def reset_parameters(self) -> None:
        """GPT-2 style: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2L)."""
        std = 0.02
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith("attn.out") or name.endswith("mlp.out")
                nn.init.normal_(module.weight, mean=0.0, std=residual_std if is_residual else std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)

    def num_parameters(self) -> int:
        """Trainable parameters; the tied embedding counts once (it is one tensor)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int, masked_fraction: float = 1.0) -> float:
        """Training FLOPs (forward + backward) per token, for MFU.

        6 FLOPs per weight per token for every matmul weight the token passes through, plus
        attention scores and values: 2 matmuls x 2 FLOPs x T x D per layer, x3 for backward.
        The MLM head and the vocabulary projection run only on the masked fraction of tokens;
        the embedding lookup is not a matmul and is not counted.
        """
        c = self.config
        per_layer = 4 * c.dim * c.dim + 3 * c.dim * c.mlp_hidden
        body = 6 * c.n_layers * per_layer
        head = 6 * (c.dim * c.dim + c.vocab_size * c.dim) * masked_fraction
        attention = 12 * c.n_layers * c.dim * seq_len
        return float(body + head + attention)

    # ----------------------------------------------------------------- forward passes
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contextual hidden states. input_ids: Long[B, T] -> Float[B, T, D]."""
        T = input_ids.shape[1]
        if (
            attention_mask is not None
            and document_ids is None
            and not torch.compiler.is_compiling()  # a data-dependent branch would break the graph
            and bool(attention_mask.all())
        ):
            # No padding: pass no mask at all, so SDPA may pick the flash kernel.
            attention_mask = None
        mask = build_attention_mask(attention_mask, document_ids, T)
        cos, sin = self.rope(T)  # [T, Dh/2] each
        x = self.drop(self.tok_emb(input_ids))  # [B, T, D]
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.norm(x)  # [B, T, D]

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits through the MLM head and the tied embedding. [..., D] -> [..., V]."""
        return F.linear(self.head(hidden), self.tok_emb.weight)

    def mlm_loss(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        document_ids: torch.Tensor | None = None,
    ) -> MLMOutput:
        """Cross-entropy at the masked positions only (labels != -100); the rest never reach the head."""
        hidden = self(input_ids, attention_mask, document_ids)  # [B, T, D]
        positions = labels != IGNORE_INDEX  # [B, T]
        targets = labels[positions]  # [N]
        logits = self.mlm_logits(hidden[positions])  # [N, V]
        # Nothing masked in this batch: a zero loss that still has a graph, so backward works.
        empty = targets.numel() == 0
        loss = hidden.sum() * 0.0 if empty else F.cross_entropy(logits.float(), targets)
        return MLMOutput(loss=loss, logits=logits, targets=targets, positions=positions)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One vector per sequence: the mean over real tokens, L2-normalized. -> Float[B, D]."""
        hidden = self(input_ids, attention_mask).float()  # [B, T, D]
        if attention_mask is None:
            weights = torch.ones(input_ids.shape, dtype=hidden.dtype, device=hidden.device)
        else:
            weights = attention_mask.to(hidden.dtype)  # [B, T]
        summed = (hidden * weights[..., None]).sum(dim=1)  # [B, D]
        mean = summed / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        return F.normalize(mean, dim=-1)
