"""SLMRec (Tao et al., IEEE TMM 2022, "Self-supervised Learning for Multimedia Recommendation"), FAC task.

Representations. Every loaded modality ``m`` gets a linear projection ``x_i^m = W_m f_i^m`` of its (L2-normalised)
item features. The ID graph and one graph per modality are propagated LightGCN-style over the same normalised
user–item adjacency ``Â``, each with the *shared* user-ID table on the user side:

  ``[e_U^0; e_I^0] = mean_{k=0..L} Â^k [E_U; E_I]``,  ``[e_U^m; e_I^m] = mean_{k=0..L} Â^k [E_U; X^m]``

(all ``M+1`` graphs go through one sparse product per layer, stacked along the feature axis). Fusion concatenates
the views and maps them back to ``d`` with one linear layer per side (MMRec's ``mm_fusion_mode: concat``):
``z_u = F_U [e_u^0; e_u^1; …; e_u^M]``, ``z_i = F_I [e_i^0; e_i^1; …; e_i^M]``; score ``s(u, i) = ⟨z_u, z_i⟩``.

Main task: in-batch InfoNCE between the fused user and positive item of every pair, cosine similarity over
``temperature`` (the official code's ``infonce``; the other pairs of the batch are the negatives, so ``batch["neg"]``
is unused). ``main_loss: bpr`` switches to BPR on ``⟨z_u, z_i⟩`` with recx's sampled negative instead.

SSL task FAC (fine and coarse), over the batch's positive items: modalities are contrasted with the item-ID view in a
hierarchy of spaces, finest first (the paper's order is visual → acoustic → textual; recx follows ``dataset.modalities``
order, so list the finest-grained modality first). With ``a_0 = e_i^0``:

  ``a_m = G_m a_{m−1}``,  ``b_m = H_m e_i^m``,  ``L_FAC = Σ_m InfoNCE(a_m, b_m; ssl_temperature)``

where ``G_m``, ``H_m`` are linear maps into space ``m`` — every space has width ``d`` except the last (coarsest)
one, which has ``d/2`` when there are several modalities (official: ``iv`` d, ``iva`` d, ``ivat`` d/2; Kwai with a
single visual modality: ``iv`` d). Total loss ``L = L_main + ssl_alpha · L_FAC``; L2 regularisation comes from the
optimiser's ``weight_decay`` (1e-4 in both the official code and MMRec; their ``reg`` key is never read).

Deliberate differences from the official code / MMRec:

* FAC logits are cosine similarities over the temperature (recx's shared ``info_nce``); the official ``fac`` divides
  raw inner products of the projected vectors by ``ssl_temp``. The main task and SLMRec's FD/FM tasks already use
  cosine, and bounded logits keep the τ=0.2 contrast from being won by growing vector norms.
  ``fac_logits=dot`` (set by ``protocol=mmrec``) uses the official/MMRec dot-product logits;
* modalities are generic. MMRec (image + text) keeps the official chain ``iv → iva → ivat`` but with the acoustic
  contrast commented out, so its text space is reached through two stacked linear maps (d→d→d/2) with nothing in
  between; recx uses one linear map d→d/2 there (the same function class). ``fac_chain=mmrec`` (set by
  ``protocol=mmrec``; image + text only, in that order) keeps MMRec's chain: one more Xavier-uniform d→d map (the
  acoustic space's) on the anchor before the text space's map;
* only FAC is implemented. The FD (feature dropout, 0.3) and FM (feature masking) tasks are left out: in MMRec they
  read a config key (``data.input.dataset``) that MMRec never sets, so FAC is the only task MMRec can run;
* scoring recomputes the propagated, fused tables in eval mode (the official code and MMRec score with the tables
  left over from the last training batch; ``score_with=last_batch``, set by ``protocol=mmrec``, does that) and drops
  the final sigmoid (monotone, the ranking is unchanged);
* the modality projections are :class:`~recx.topn.layers.Projector` (Xavier-normal weight, zero bias; official:
  Xavier-uniform weight, PyTorch default bias). ``projection_init=mmrec`` (set by ``protocol=mmrec``) uses the
  official init; with L2-normalised features that default bias (±1/√fan_in) is of the order of the projected
  features, a vector shared by every item at the start. The other linear maps are Xavier-uniform, as in the official
  code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.features import modality_features
from recx.topn.graph import lightgcn_propagate, train_adjacency
from recx.topn.layers import Projector
from recx.topn.losses import bpr_loss, info_nce
from recx.topn.models.base import TopNModel


def _linear(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    return layer


def fac_widths(n_modalities: int, dim: int) -> list[int]:
    """Widths of FAC's spaces, finest first: ``dim`` each, the coarsest ``dim // 2`` when there are several."""
    if n_modalities == 1:
        return [dim]
    return [dim] * (n_modalities - 1) + [dim // 2]


#: the values of SLMRec's text keys (the constructor and the config check read these)
FAC_LOGITS = ("cosine", "dot")
FAC_CHAINS = ("recx", "mmrec")
PROJECTION_INITS = ("recx", "mmrec")


class SLMRec(TopNModel):
    #: data-derived attributes that follow the parameters' device (see DerivedState)
    derived = ("adjacency",)

    uses_features = True

    def __init__(self, data: InteractionData, embedding_dim: int = 64, n_layers: int = 3, temperature: float = 0.2,
                 ssl_alpha: float = 0.1, ssl_temperature: float = 0.2, ssl_task: str = "FAC",
                 main_loss: str = "infonce", feature_norm: str = "l2", fac_logits: str = "cosine",
                 fac_chain: str = "recx", projection_init: str = "recx", score_with: str = "current") -> None:
        super().__init__(data.n_users, data.n_items)
        self.score_with_last_batch(score_with, embedding_dim)
        if ssl_task != "FAC":
            raise ValueError(f"SLMRec: only the FAC self-supervised task is implemented, got ssl_task={ssl_task!r}")
        if main_loss not in ("infonce", "bpr"):
            raise ValueError(f"SLMRec: main_loss must be infonce or bpr, got {main_loss!r}")
        self.embedding_dim, self.n_layers = embedding_dim, n_layers
        self.temperature, self.ssl_alpha, self.ssl_temperature = temperature, ssl_alpha, ssl_temperature
        self.main_loss = main_loss
        if fac_logits not in FAC_LOGITS:
            raise ConfigError(f"unknown fac_logits '{fac_logits}'", field="model.fac_logits",
                              fix="use cosine (recx) or dot (the official code / MMRec: raw inner products / τ)")
        self.fac_logits = fac_logits
        if fac_chain not in FAC_CHAINS:
            raise ConfigError(f"unknown fac_chain '{fac_chain}'", field="model.fac_chain",
                              fix="use recx (one anchor map per space) or mmrec (MMRec's image → acoustic → text "
                                  "chain, acoustic contrast removed)")
        if fac_chain == "mmrec" and data.item_features and list(data.item_features) != ["image", "text"]:
            raise ConfigError(f"fac_chain=mmrec is MMRec's image+text chain; got modalities "
                              f"{list(data.item_features)}", field="model.fac_chain",
                              fix="set dataset.modalities=[image,text] or use fac_chain=recx")
        self.fac_chain = fac_chain
        if projection_init not in PROJECTION_INITS:
            raise ConfigError(f"unknown projection_init '{projection_init}'", field="model.projection_init",
                              fix="use recx (Xavier-normal weight, zero bias) or mmrec (Xavier-uniform weight, "
                                  "PyTorch's default uniform bias)")
        self.user_embedding = nn.Embedding(data.n_users, embedding_dim)
        self.item_embedding = nn.Embedding(data.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)

        feats = modality_features(data, feature_norm)
        self.modalities = list(feats)
        for m, f in feats.items():
            self.register_buffer(f"feat_{m}", f)
        self.projections = nn.ModuleDict({m: Projector(f.shape[1], embedding_dim) for m, f in feats.items()})
        if projection_init == "mmrec":  # MMRec's v_dense / t_dense: Xavier-uniform weight, nn.Linear's own bias
            for projection in self.projections.values():
                layer = projection.net[-1]
                nn.init.xavier_uniform_(layer.weight)
                bound = layer.in_features ** -0.5
                nn.init.uniform_(layer.bias, -bound, bound)
        n_views = len(self.modalities) + 1
        self.fuse_user = _linear(n_views * embedding_dim, embedding_dim)
        self.fuse_item = _linear(n_views * embedding_dim, embedding_dim)

        widths = fac_widths(len(self.modalities), embedding_dim)
        anchor_in = [embedding_dim] + widths[:-1]
        self.fac_anchor = nn.ModuleList([_linear(a, w) for a, w in zip(anchor_in, widths)])
        self.fac_modality = nn.ModuleList([_linear(embedding_dim, w) for w in widths])
        # MMRec's chain keeps the acoustic space's anchor map (d→d) between the image and text spaces; its contrast is
        # commented out there, so the text anchor passes through one more linear map with nothing in between
        self.fac_bridge = _linear(embedding_dim, embedding_dim) if fac_chain == "mmrec" else None
        # Not a buffer: derived from the data, kept out of checkpoints (see LightGCN).
        self.adjacency = train_adjacency(data)

    # ------------------------------------------------------------ embeddings
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All views propagated at once: users ``[n_users, (M+1)·d]``, items ``[n_items, (M+1)·d]``.

        Column block 0 is the ID view, block ``m`` the view of modality ``m`` (in ``self.modalities`` order).
        """
        items = [self.item_embedding.weight] + [self.projections[m](getattr(self, f"feat_{m}"))
                                                for m in self.modalities]
        users = self.user_embedding.weight.repeat(1, len(items))  # every view starts from the shared user IDs
        final = lightgcn_propagate(self.adjacency, torch.cat([users, torch.cat(items, dim=1)]), self.n_layers)
        return final[: self.n_users], final[self.n_users:]

    def _fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.propagate()
        return self.fuse_user(users), self.fuse_item(items)

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cached("fused", lambda: self.scoring_tables(self._fused))

    # ------------------------------------------------------------------ loss
    def fac_loss(self, item_views: torch.Tensor) -> torch.Tensor:
        """FAC over a batch of items' propagated views ``[B, (M+1)·d]`` (ID block first)."""
        views = item_views.split(self.embedding_dim, dim=1)
        anchor, loss = views[0], item_views.new_zeros(())
        for m in range(len(self.modalities)):
            if self.fac_bridge is not None and m == len(self.modalities) - 1:
                anchor = self.fac_bridge(anchor)
            anchor = self.fac_anchor[m](anchor)
            target = self.fac_modality[m](views[m + 1])
            if self.fac_logits == "cosine":
                loss = loss + info_nce(anchor, target, self.ssl_temperature)
            else:  # MMRec's fac: cross-entropy over raw inner products / τ, row i's positive is column i
                logits = anchor @ target.T / self.ssl_temperature
                loss = loss + F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))
        return loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, pos = batch["users"], batch["pos"]
        users_all, items_all = self.propagate()
        if self.keeps_last_batch:  # score_with=last_batch: MMRec's all_users/all_items, fused as its compute() does
            with torch.no_grad():
                self.remember_batch_tables(self.fuse_user(users_all), self.fuse_item(items_all))
        # index_select, not x[idx]: its backward is deterministic on CPU (advanced indexing scatters in parallel)
        item_views = items_all.index_select(0, pos)
        z_u, z_i = self.fuse_user(users_all.index_select(0, users)), self.fuse_item(item_views)
        if self.main_loss == "infonce":
            main = info_nce(z_u, z_i, self.temperature)
        else:
            z_j = self.fuse_item(items_all.index_select(0, batch["neg"]))
            main = bpr_loss((z_u * z_i).sum(-1), (z_u * z_j).sum(-1))
        return main + self.ssl_alpha * self.fac_loss(item_views)
