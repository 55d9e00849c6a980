"""Training objectives for heavily imbalanced classification, selectable by name.

    objective = make_objective("clustered", class_counts=[20, 20, 10, 260], embed_dim=64)

``class_counts`` are the training-set counts per class in ``LABELS`` order (dog, baby_cry,
gunshot, background). Every objective has the same small interface:

- ``name``: the name it was made with;
- ``classification_loss(logits[B, C], y[B]) -> loss[]``: what trains the classifier head;
- ``sample_weights(y[N]) -> weights[N] | None``: per-example weights for a
  ``torch.utils.data.WeightedRandomSampler`` (None = plain shuffling);
- ``two_stage``: True only for ``clustered`` (stage 1 trains the embedding with
  ``objective.embedding_loss``, stage 2 trains the classifier with ``classification_loss``).

The objectives:

- ``weighted-ce``: the published baseline. Cross-entropy with class weight proportional to
  1/n_c, normalised to mean 1 over classes.
- ``class-balanced``: Cui et al. 2019. Cross-entropy weighted by the inverse "effective
  number" (1 - beta^n_c) / (1 - beta), normalised to mean 1 over classes.
- ``focal``: Lin et al. 2017, -alpha_t (1 - p_t)^gamma log p_t, alpha = the weighted-ce weights.
- ``logit-adjusted``: Menon et al. 2021, cross-entropy on logits + tau * log(prior).
- ``oversample``: plain cross-entropy on class-balanced batches.
- ``clustered``: the clustered-centroid method. Stage 1 trains the embedding with
  :class:`ClusteredCentroidLoss` (every class split into clusters of about the size of the
  rarest class; each embedding is pulled to its own cluster's centroid and pushed a margin away
  from the nearest centroid of any other class). Stage 2 trains the classifier head with the
  baseline's weighted cross-entropy.

Reductions. Weighted cross-entropy is PyTorch's weighted mean (sum_i w_{y_i} l_i / sum_i w_{y_i}),
not the plain batch mean Keras' ``class_weight`` uses; the two differ only by a per-batch scale.
Focal loss is normalised the same way, so focal with gamma=0 is exactly weighted-ce.
"""

from __future__ import annotations

import inspect
import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# -----------------------------------------------------------------------------
# class weights


def _check_counts(class_counts: Sequence[int]) -> np.ndarray:
    """Training-set counts as an int64 array; every class needs at least one example (a weight
    1/n_c, a prior log(n_c/N) or a cluster of an empty class means nothing)."""
    counts = np.asarray(class_counts)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(f"class_counts must be a list of at least 2 counts, got {class_counts!r}")
    if not np.all(counts == np.round(counts)) or np.any(counts < 1):
        raise ValueError(f"every class needs a whole, positive training count, got {list(counts)}")
    return counts.astype(np.int64)


def inverse_frequency_weights(class_counts: Sequence[int]) -> np.ndarray:
    """w_c proportional to 1/n_c, mean 1 over classes: a class with 1/5 the data weighs 5x.
    Returns float64[C]."""
    inv = 1.0 / _check_counts(class_counts).astype(np.float64)
    return inv / inv.mean()


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.999) -> np.ndarray:
    """Cui et al. 2019: w_c proportional to (1 - beta) / (1 - beta^n_c), mean 1 over classes.
    beta -> 1 gives inverse frequency, beta = 0 gives uniform weights. Returns float64[C]."""
    counts = _check_counts(class_counts).astype(np.float64)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    # 1 - beta^n computed as -expm1(n log beta) so beta = 0.99999... does not round to 0/0.
    # The constant (1 - beta) cancels in the normalisation.
    one_minus_beta_n = -np.expm1(counts * np.log(beta)) if beta > 0 else np.ones_like(counts)
    w = 1.0 / one_minus_beta_n
    return w / w.mean()


def _weighted_ce(logits: Tensor, y: Tensor, weight: Optional[Tensor]) -> Tensor:
    """Cross-entropy, weighted mean over the batch (PyTorch's convention)."""
    return F.cross_entropy(logits, y, weight=None if weight is None else weight.to(logits))


def focal_loss(logits: Tensor, y: Tensor, gamma: float = 2.0, alpha: Optional[Tensor] = None) -> Tensor:
    """Lin et al. 2017 for softmax outputs: -alpha_t (1 - p_t)^gamma log p_t.

    logits: [B, C], y: [B] int64, alpha: [C] or None. Returns a scalar: the alpha-weighted mean
    sum_i alpha_i fl_i / sum_i alpha_i (the plain mean when alpha is None), so gamma=0 gives
    exactly the (weighted) cross-entropy."""
    logp_t = F.log_softmax(logits, dim=-1).gather(1, y[:, None]).squeeze(1)  # [B]
    p_t = logp_t.exp()
    # clamp: 1 - p_t can round to a tiny negative number when p_t is ~1
    loss = -(1.0 - p_t).clamp(min=0.0).pow(gamma) * logp_t  # [B]
    if alpha is None:
        return loss.mean()
    a = alpha.to(logits)[y]  # [B]
    return (a * loss).sum() / a.sum()


# -----------------------------------------------------------------------------
# the objectives


class Objective:
    """Plain cross-entropy, uniform shuffling. Subclasses override what differs."""

    name = "ce"
    two_stage = False

    def __init__(self, class_counts: Sequence[int]):
        self.class_counts = _check_counts(class_counts)
        self.num_classes = len(self.class_counts)

    def classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """logits: [B, C] raw scores, y: [B] int64 -> scalar loss."""
        return F.cross_entropy(logits, y)

    def sample_weights(self, y: np.ndarray) -> Optional[np.ndarray]:
        """y: [N] labels of the training set -> [N] sampling weights, or None (shuffle)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class WeightedCE(Objective):
    """The published baseline: cross-entropy with inverse-frequency class weights."""

    name = "weighted-ce"

    def __init__(self, class_counts: Sequence[int]):
        super().__init__(class_counts)
        self.class_weights = torch.tensor(inverse_frequency_weights(self.class_counts), dtype=torch.float32)

    def classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return _weighted_ce(logits, y, self.class_weights)


class ClassBalancedCE(WeightedCE):
    """Cui et al. 2019: cross-entropy with effective-number class weights."""

    name = "class-balanced"

    def __init__(self, class_counts: Sequence[int], beta: float = 0.999):
        super().__init__(class_counts)
        self.beta = float(beta)
        self.class_weights = torch.tensor(
            class_balanced_weights(self.class_counts, self.beta), dtype=torch.float32
        )


class Focal(Objective):
    """Lin et al. 2017 focal loss; alpha="inverse" uses the weighted-ce weights, None none."""

    name = "focal"

    def __init__(self, class_counts: Sequence[int], gamma: float = 2.0, alpha: Optional[str] = "inverse"):
        super().__init__(class_counts)
        if gamma < 0:
            raise ValueError(f"focal: gamma must be >= 0, got {gamma}")
        if alpha not in ("inverse", None):
            raise ValueError(f"focal: alpha must be 'inverse' or None, got {alpha!r}")
        self.gamma = float(gamma)
        self.alpha = alpha
        self.class_weights = (
            torch.tensor(inverse_frequency_weights(self.class_counts), dtype=torch.float32)
            if alpha == "inverse"
            else None
        )

    def classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return focal_loss(logits, y, self.gamma, self.class_weights)


class LogitAdjusted(Objective):
    """Menon et al. 2021: cross-entropy on logits + tau * log(prior), prior_c = n_c / N.

    The adjustment lives only in the loss. At inference the model's RAW logits are used
    (argmax of the raw logits is what the loss makes balanced-error optimal); nothing has to be
    subtracted at test time, and nothing of this objective ends up in a converted model."""

    name = "logit-adjusted"

    def __init__(self, class_counts: Sequence[int], tau: float = 1.0):
        super().__init__(class_counts)
        self.tau = float(tau)
        prior = self.class_counts / self.class_counts.sum()
        self.log_prior = torch.tensor(np.log(prior), dtype=torch.float32)  # [C]

    def classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.tau * self.log_prior.to(logits), y)


def _balanced_weights(groups: np.ndarray, num_groups: int) -> np.ndarray:
    """1 / (size of the example's group): every non-empty group gets the same total mass."""
    sizes = np.bincount(groups, minlength=num_groups).astype(np.float64)
    return 1.0 / sizes[groups]


class Oversample(Objective):
    """Plain cross-entropy; the sampler draws every class equally often (class-balanced
    sampling). Class sizes are counted in the y passed in, so the balance holds for exactly the
    examples the sampler sees."""

    name = "oversample"

    def sample_weights(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.int64)
        return _balanced_weights(y, self.num_classes)


STAGE1_SAMPLING = ("cluster-balanced", "class-balanced", "none")


class Clustered(WeightedCE):
    """The clustered-centroid method, in two stages.

    Stage 1 trains the embedding with ``self.embedding_loss`` (a :class:`ClusteredCentroidLoss`,
    built when ``embed_dim`` is given), sampling with ``stage1_sample_weights(y, cluster_ids)``.
    Stage 2 trains the classifier head with ``classification_loss`` (the baseline's weighted
    cross-entropy) and plain shuffling (``sample_weights`` returns None)."""

    name = "clustered"
    two_stage = True

    def __init__(
        self,
        class_counts: Sequence[int],
        embed_dim: Optional[int] = None,
        stage1_sampling: str = "cluster-balanced",
        margin: float = 0.5,
        pull_weight: float = 1.0,
        intra_class_margin: Optional[float] = None,
        momentum: float = 0.9,
        kmeans_iters: int = 20,
    ):
        super().__init__(class_counts)
        if stage1_sampling not in STAGE1_SAMPLING:
            raise ValueError(
                f"clustered: stage1_sampling must be one of {', '.join(STAGE1_SAMPLING)}, "
                f"got {stage1_sampling!r}"
            )
        self.stage1_sampling = stage1_sampling
        self.embedding_loss = (
            None
            if embed_dim is None
            else ClusteredCentroidLoss(
                self.class_counts,
                embed_dim,
                margin=margin,
                pull_weight=pull_weight,
                intra_class_margin=intra_class_margin,
                momentum=momentum,
                kmeans_iters=kmeans_iters,
            )
        )

    def stage1_sample_weights(self, y: np.ndarray, cluster_ids: np.ndarray) -> Optional[np.ndarray]:
        """y, cluster_ids: [N] (cluster_ids from ``embedding_loss.assign``) -> [N] or None.

        "cluster-balanced": every cluster gets the same mass. Clusters hold about n_min examples
        each, so class mass stays about proportional to n_c, but small modes of a class (a rare
        kind of background) are drawn as often as big ones. "class-balanced": every class the
        same mass. "none": plain shuffling."""
        if self.stage1_sampling == "none":
            return None
        if self.stage1_sampling == "class-balanced":
            return _balanced_weights(np.asarray(y, dtype=np.int64), self.num_classes)
        cluster_ids = np.asarray(
            cluster_ids.cpu() if isinstance(cluster_ids, Tensor) else cluster_ids, np.int64
        )
        num_clusters = (
            int(cluster_ids.max()) + 1 if self.embedding_loss is None else self.embedding_loss.num_clusters
        )
        return _balanced_weights(cluster_ids, num_clusters)


OBJECTIVES = {
    "weighted-ce": WeightedCE,
    "class-balanced": ClassBalancedCE,
    "focal": Focal,
    "logit-adjusted": LogitAdjusted,
    "oversample": Oversample,
    "clustered": Clustered,
}


def make_objective(
    name: str, class_counts: Sequence[int], embed_dim: Optional[int] = None, **params
) -> Objective:
    """The objective called ``name`` (one of ``OBJECTIVES``) for these training-set counts.

    ``embed_dim`` is used by ``clustered`` (to build its embedding loss) and ignored by the
    others, so a trainer can always pass it. ``params`` are the objective's own options:
    class-balanced: beta; focal: gamma, alpha; logit-adjusted: tau; clustered: stage1_sampling,
    margin, pull_weight, intra_class_margin, momentum, kmeans_iters. An unknown name or option
    is a ValueError that lists the valid ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    if cls is Clustered:
        params["embed_dim"] = embed_dim
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "class_counts")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"objective {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(accepted) or 'none'}"
        )
    return cls(class_counts, **params)


# -----------------------------------------------------------------------------
# clustered-centroid embedding loss


def cluster_counts(class_counts: Sequence[int]) -> list[int]:
    """k_c = max(1, round(n_c / n_min)) clusters per class, n_min the smallest class count, so
    every cluster holds about n_min examples. Rounds half up (2.5 -> 3), not to even."""
    counts = _check_counts(class_counts)
    n_min = counts.min()
    return [max(1, int(math.floor(n / n_min + 0.5))) for n in counts.tolist()]


def _sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """Squared euclidean distances [N, K] between rows of x [N, D] and c [K, D]; via the
    expansion |x|^2 + |c|^2 - 2 x.c so nothing bigger than N x K is ever built."""
    return ((x * x).sum(1, keepdim=True) + (c * c).sum(1)[None, :] - 2.0 * x @ c.T).clamp(min=0.0)


def kmeans(
    x: Tensor, k: int, iters: int = 20, generator: Optional[torch.Generator] = None
) -> tuple[Tensor, Tensor]:
    """Spherical k-means on unit vectors x [N, D] (N >= k >= 1) -> (centres [k, D], labels [N]).

    Initialisation: k-means++ (first centre uniform, each next one drawn with probability
    proportional to the squared distance to the nearest centre so far), with ``generator`` as the
    only source of randomness, so the result is a function of (x, k, generator seed). Then at
    most ``iters`` Lloyd iterations (stopping early when no label changes): assign each point to
    its nearest centre (squared euclidean = 2 - 2 cos on unit vectors), re-seed every empty
    cluster with the point farthest from its own centre (taken from a cluster with more than one
    member), and set each centre to the L2-normalised mean of its members. The labels returned
    are the ones the returned centres were computed from."""
    n = x.shape[0]
    assert 1 <= k <= n, (k, n)
    # k-means++; sampling runs on the CPU so a CPU generator works for any device
    first = torch.randint(n, (1,), generator=generator).item()
    centres = [x[first]]
    d2 = _sq_dists(x, x[first][None]).squeeze(1)  # [N] distance to the nearest centre so far
    for _ in range(1, k):
        p = d2.double().cpu()
        if p.sum() <= 0:  # every point sits on a centre already (duplicates): pick uniformly
            p = torch.ones(n, dtype=torch.float64)
        i = torch.multinomial(p, 1, generator=generator).item()
        centres.append(x[i])
        d2 = torch.minimum(d2, _sq_dists(x, x[i][None]).squeeze(1))
    centres = torch.stack(centres)  # [k, D]

    labels = None
    for _ in range(iters):
        dist = _sq_dists(x, centres)  # [N, k]
        new = dist.argmin(1)
        sizes = torch.bincount(new, minlength=k)
        for j in torch.nonzero(sizes == 0).flatten().tolist():
            own = dist.gather(1, new[:, None]).squeeze(1)  # [N] distance to own centre
            own = own.masked_fill(sizes[new] <= 1, -1.0)  # never empty another cluster
            i = int(own.argmax())
            sizes[new[i]] -= 1
            new[i] = j
            sizes[j] = 1
            dist[i, j] = 0.0
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        centres = F.normalize(sums, dim=1)
    if labels is None:  # iters == 0: labels from the initial centres
        labels = _sq_dists(x, centres).argmin(1)
    return centres, labels


class ClusteredCentroidLoss(nn.Module):
    """Pull each embedding to its cluster's centroid, push it a margin away from the nearest
    centroid of any other class.

    Class c is split into k_c = ``cluster_counts(class_counts)[c]`` clusters; cluster ids are
    global, the clusters of class 0 first, then class 1, ... (``cluster_class[k]`` is the class
    of cluster k). Embeddings are L2-normalised inside; distances are squared euclidean between
    unit vectors (in [0, 4]).

    Per example, with d(a, b) = |a - b|^2:
        d_pos = d(z, c_own)
        d_neg = min over clusters k of other classes of d(z, c_k)
        loss  = pull_weight * d_pos + relu(margin + d_pos - d_neg)
    and, if ``intra_class_margin`` is set (LMLE-style, smaller than ``margin``), also
        + relu(intra_class_margin + d_pos - d_intra),  d_intra = min over the OTHER clusters of
          the same class (no term for a class with one cluster).
    The batch loss is the mean over examples.

    Protocol (the trainer's side):
    1. each epoch: compute embeddings of the training set in eval mode, then
       ``cluster_ids = loss.assign(embeddings, y, seed)``; this runs k-means per class and sets
       the centroids to the k-means centres;
    2. each batch: ``loss(z, y, cluster_ids[batch])`` for the gradient, then after the step
       ``loss.update_centroids(z.detach(), cluster_ids[batch])`` for the EMA.
    Centroids are constants for the gradient. forward and update_centroids cost O(B K D) and
    never build anything example-by-example (no B x B matrix); only assign sees the data set.

    Buffers (all in state_dict, so a resumed run continues exactly): ``centroids`` [K, D],
    ``cluster_class`` [K], ``cluster_size`` [K] (members at the last assign), ``assigned``
    (whether assign has run)."""

    def __init__(
        self,
        class_counts: Sequence[int],
        embed_dim: int,
        margin: float = 0.5,
        pull_weight: float = 1.0,
        intra_class_margin: Optional[float] = None,
        momentum: float = 0.9,
        kmeans_iters: int = 20,
    ):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if intra_class_margin is not None and not 0.0 <= intra_class_margin < margin:
            raise ValueError(f"intra_class_margin must be in [0, margin={margin}), got {intra_class_margin}")
        self.class_counts = _check_counts(class_counts).tolist()
        self.clusters_per_class = cluster_counts(self.class_counts)
        self.num_classes = len(self.class_counts)
        self.num_clusters = sum(self.clusters_per_class)
        self.embed_dim = int(embed_dim)
        self.margin = float(margin)
        self.pull_weight = float(pull_weight)
        self.intra_class_margin = None if intra_class_margin is None else float(intra_class_margin)
        self.momentum = float(momentum)
        self.kmeans_iters = int(kmeans_iters)

        cluster_class = torch.repeat_interleave(
            torch.arange(self.num_classes), torch.tensor(self.clusters_per_class)
        )
        self.register_buffer("cluster_class", cluster_class)  # [K] int64
        # placeholder until the first assign(); forward refuses to run before it
        self.register_buffer("centroids", torch.zeros(self.num_clusters, self.embed_dim))  # [K, D]
        self.register_buffer("cluster_size", torch.zeros(self.num_clusters, dtype=torch.long))  # [K]
        self.register_buffer("assigned", torch.tensor(False))
        self.last_stats: dict[str, float] = {}

    @torch.no_grad()
    def assign(self, embeddings: Tensor, y: Tensor, seed: int) -> Tensor:
        """k-means per class on the L2-normalised embeddings [N, D] with labels y [N] ->
        global cluster ids [N] (int64, on y's device). Sets ``centroids`` to the k-means
        centres. Deterministic for a seed: one CPU generator seeded with ``seed`` drives the
        k-means++ draws of every class, class 0 first.

        A class with fewer examples here than clusters (only possible when embeddings is not the
        training set the counts came from) uses one cluster per example; its remaining
        clusters, and all clusters of a class absent here, keep their previous centroids."""
        z = F.normalize(embeddings.detach().float(), dim=1)
        y_device, y = y.device, y.to(z.device)
        g = torch.Generator().manual_seed(int(seed))
        ids = torch.empty(len(z), dtype=torch.long, device=z.device)
        centroids = self.centroids.clone()
        first = 0
        for c, k in enumerate(self.clusters_per_class):
            members = torch.nonzero(y == c).flatten()
            if len(members) > 0:
                k_eff = min(k, len(members))
                centres, labels = kmeans(z[members], k_eff, self.kmeans_iters, generator=g)
                centroids[first : first + k_eff] = centres.to(centroids)
                ids[members] = first + labels
            first += k
        self.centroids.copy_(centroids)
        self.cluster_size.copy_(torch.bincount(ids, minlength=self.num_clusters).to(self.cluster_size))
        self.assigned.fill_(True)
        return ids.to(y_device)

    @torch.no_grad()
    def update_centroids(self, z: Tensor, cluster_ids: Tensor) -> None:
        """EMA of the centroids from one batch: z [B, D] embeddings, cluster_ids [B].

        For every cluster k present in the batch, with m_k the mean of its L2-normalised
        embeddings in the batch: c_k <- normalise(momentum * c_k + (1 - momentum) * m_k).
        Clusters absent from the batch do not move. Cost O(B D + K D)."""
        z = F.normalize(z.detach().to(self.centroids), dim=1)
        cluster_ids = cluster_ids.long().to(z.device)
        sums = torch.zeros_like(self.centroids).index_add_(0, cluster_ids, z)  # [K, D]
        n = torch.bincount(cluster_ids, minlength=self.num_clusters).to(z)  # [K]
        present = n > 0
        mean = sums[present] / n[present, None]
        moved = self.momentum * self.centroids[present] + (1.0 - self.momentum) * mean
        self.centroids[present] = F.normalize(moved, dim=1)

    def forward(self, z: Tensor, y: Tensor, cluster_ids: Tensor) -> Tensor:
        """z [B, D] embeddings, y [B] class labels, cluster_ids [B] global cluster ids (of class
        y) -> scalar loss. Also sets ``self.last_stats`` (floats): d_pos and d_neg (batch means),
        active (fraction of examples whose margin hinge is > 0), and intra_active with the
        intra-class term."""
        if not bool(self.assigned):
            raise RuntimeError("ClusteredCentroidLoss: call assign() before the first forward()")
        y, cluster_ids = y.long(), cluster_ids.long()
        if not torch.equal(self.cluster_class[cluster_ids], y):
            raise ValueError("cluster_ids do not belong to the classes in y")
        z = F.normalize(z, dim=1)
        c = self.centroids.detach().to(z)
        d = _sq_dists(z, c)  # [B, K]
        d_pos = d.gather(1, cluster_ids[:, None]).squeeze(1)  # [B]
        same_class = self.cluster_class[None, :] == y[:, None]  # [B, K]
        d_neg = d.masked_fill(same_class, float("inf")).min(1).values  # [B]
        hinge = F.relu(self.margin + d_pos - d_neg)
        loss = self.pull_weight * d_pos + hinge
        stats = {
            "d_pos": d_pos.mean().item(),
            "d_neg": d_neg.mean().item(),
            "active": (hinge > 0).float().mean().item(),
        }

        if self.intra_class_margin is not None:
            own = torch.zeros_like(same_class).scatter_(1, cluster_ids[:, None], True)
            d_intra = d.masked_fill(~same_class | own, float("inf")).min(1).values  # [B], inf if k_c = 1
            intra = F.relu(self.intra_class_margin + d_pos - d_intra)  # relu(-inf) = 0
            loss = loss + intra
            stats["intra_active"] = (intra > 0).float().mean().item()

        self.last_stats = stats
        return loss.mean()

    def extra_repr(self) -> str:
        return (
            f"clusters={self.clusters_per_class}, embed_dim={self.embed_dim}, margin={self.margin}, "
            f"pull_weight={self.pull_weight}, intra_class_margin={self.intra_class_margin}, "
            f"momentum={self.momentum}"
        )
