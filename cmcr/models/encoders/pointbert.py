"""PointBERT point-cloud transformer (the ULIP 3D tower), model definition only.

Module and parameter names follow salesforce/ULIP `models/pointbert/point_encoder.py` and
`dvae.py` (`encoder.first_conv.0`, `blocks.blocks.3.attn.qkv`, `pos_embed.2`, ...) so that the
official checkpoint loads strictly; loading itself lives in `cmcr/models/encoders/ulip.py`.
Grouping is our batched FPS + kNN (`cmcr/models/encoders/fps.py`) instead of CUDA extensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cmcr.models.encoders.fps import Backend, StartMode, group_points


@dataclass(frozen=True)
class PointBERTConfig:
    """Widths of PointBERT; the defaults are ULIP's `PointTransformer_8192point.yaml`."""

    trans_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_groups: int = 512
    group_size: int = 32
    encoder_dims: int = 256
    first_conv_dims: tuple[int, int] = (128, 256)
    second_conv_hidden: int = 512
    pos_hidden: int = 128
    fps_start: StartMode = "farthest"
    fps_backend: Backend | None = None  # None: `CMCR_FPS_BACKEND`, else "auto" (see fps.py)

    @property
    def feature_dim(self) -> int:
        """Width of the output: cls token and max-pooled group tokens, concatenated."""
        return 2 * self.trans_dim


class PointwiseConv(nn.Conv1d):
    """A kernel-1 Conv1d, kept as Conv1d so checkpoint weights keep their (out, in, 1) shape, but
    applied to (rows, channels) as one matmul: far faster than Conv1d on (groups, channels, K)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.squeeze(-1), self.bias)

    def as_linear(self) -> nn.Linear:
        """The same layer as an nn.Linear (what int8 dynamic quantisation replaces)."""
        linear = nn.Linear(self.in_channels, self.out_channels, device=self.weight.device)
        linear.weight.data.copy_(self.weight.detach().squeeze(-1))
        linear.bias.data.copy_(self.bias.detach())
        return linear


class MiniPointNet(nn.Module):
    """Embeds each neighbourhood (K points) into one token: shared per-point MLPs, max-pooling,
    the pooled feature concatenated back onto every point, a second MLP, max-pooling again."""

    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        hidden, width = config.first_conv_dims
        self.first_conv = nn.Sequential(
            PointwiseConv(3, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            PointwiseConv(hidden, width),
        )
        self.second_conv = nn.Sequential(
            PointwiseConv(2 * width, config.second_conv_hidden),
            nn.BatchNorm1d(config.second_conv_hidden),
            nn.ReLU(inplace=True),
            PointwiseConv(config.second_conv_hidden, config.encoder_dims),
        )

    def forward(self, neighbourhoods: torch.Tensor) -> torch.Tensor:
        """(B, G, K, 3) → (B, G, encoder_dims); per-point layers see (B*G*K, channels) rows."""
        batch, groups, size, _ = neighbourhoods.shape
        features = self.first_conv(neighbourhoods.reshape(-1, 3)).reshape(batch * groups, size, -1)
        pooled = features.amax(dim=1, keepdim=True).expand(-1, size, -1)
        features = torch.cat([pooled, features], dim=-1).reshape(batch * groups * size, -1)
        features = self.second_conv(features).reshape(batch * groups, size, -1)
        return features.amax(dim=1).reshape(batch, groups, -1)


class Attention(nn.Module):
    """Multi-head self-attention without qkv bias, as in PointBERT."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(query, key, value)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    """The block stack; PointBERT adds the position embedding before every block, not once."""

    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(config.trans_dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x + pos)
        return x


class PointBERT(nn.Module):
    """Point clouds (B, N, 3) → features (B, 2 * trans_dim): [cls token, max over group tokens]."""

    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MiniPointNet(config)
        self.reduce_dim = nn.Linear(config.encoder_dims, config.trans_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.trans_dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, config.trans_dim))
        self.pos_embed = nn.Sequential(
            nn.Linear(3, config.pos_hidden), nn.GELU(), nn.Linear(config.pos_hidden, config.trans_dim)
        )
        self.blocks = TransformerEncoder(config)
        self.norm = nn.LayerNorm(config.trans_dim)

    def forward(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        config = self.config
        neighbourhoods, centres = group_points(
            points, config.num_groups, config.group_size, config.fps_start, generator, config.fps_backend
        )
        tokens = self.reduce_dim(self.encoder(neighbourhoods))
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centres)], dim=1)
        x = self.norm(self.blocks(x, pos))
        return torch.cat([x[:, 0], x[:, 1:].amax(dim=1)], dim=-1)
