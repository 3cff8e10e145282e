"""Every option and constant of Neural Color Transfer, with its default and the reason for it.

One name per option: the library (``NeuralColorTransfer.transfer(..., working_size=...)``), the
command line (``--working-size``) and the app's API (``working_size``) all use these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

LEVELS = (5, 4, 3, 2, 1)


@dataclass(frozen=True)
class TransferConfig:
    """Options of :meth:`colorizer.NeuralColorTransfer.transfer`. ``options()`` lists the user-facing ones."""

    working_size: int = field(default=512, metadata=dict(
        help="long side that matching runs at; the output is always at the source's full resolution",
        low=64, high=4096))
    levels: tuple[int, ...] = field(default=LEVELS, metadata=dict(
        help="VGG levels to run, coarse to fine, a subset of 5 4 3 2 1 (e.g. 3 2 1 is faster)"))
    transfer_lightness: bool = field(default=True, metadata=dict(
        help="transfer lightness as well as colour (the paper's model); off: chroma only. "
             "A gray source always keeps its lightness"))
    strength: float = field(default=1.0, metadata=dict(
        help="0 keeps the source, 1 is the full transfer (applied to the output only)", low=0.0, high=1.0))
    completeness: float = field(default=2.0, metadata=dict(
        help="weight of the reference-to-source votes in the guidance (the paper's 2); lower it for "
             "less similar pairs", low=0.0, high=100.0))
    lambda_local: float = field(default=0.125, metadata=dict(
        help="local smoothness of the colour model (the paper's 0.125): WLS weight lambda / (|dL|^1.2 + 1e-4)",
        low=0.0, high=100.0))
    lambda_nonlocal: float = field(default=2.0, metadata=dict(
        help="consistency among pixels of similar colour and content (the paper's 2.0); colour sources only: "
             "a gray source has no colour to tell its materials apart by", low=0.0, high=100.0))
    lambda_detail: float = field(default=5.0, metadata=dict(
        help="weight of the detail term: what the colour model adds to or removes from the source's local "
             "contrast costs this much, so detail is not washed out (not in the paper; see "
             "colorizer/local_linear.py)", low=0.0, high=1000.0))
    clusters: int = field(default=3, metadata=dict(
        help="k-means clusters of relu5_1 features that bound the non-local neighbourhoods (the paper's 10; "
             "see TransferConfig)", low=1, high=64))
    neighbors: int = field(default=8, metadata=dict(
        help="non-local neighbours per pixel (the paper's 8)", low=1, high=12))
    seed: int = field(default=0, metadata=dict(help="random seed; results are deterministic per seed",
                                               low=0, high=2**63 - 1))

    # Constants of the method, documented here rather than scattered through the code.
    #: Why ``clusters`` is 3 and not the paper's 10: the non-local term links each pixel to the pixels
    #: nearest in colour within its cluster, and a colour source's colours already tell its objects
    #: apart; 10 clusters mostly cut one region into parts with hard, straight borders where the source
    #: has no edge (the app's coast example: the near sea came out in dark blocks beside a bright far
    #: sea). With 10 / 3 / 1 clusters, on 44 pairs and 3 photos: regrade 11.47 / 11.30 / 11.15,
    #: regrade-self 3.61 / 3.27 / 3.18, recolor 3.32 / 3.23 / 3.18, multi-reference 3.46 / 3.28 / 3.31.
    #: Three keep the coarsest semantic split (what the paper's clusters are for: a sky and a sea of one
    #: colour), which this benchmark cannot reward: its truths are global grades.
    #:
    #: Why a gray source has no non-local term (``lambda_nonlocal`` applies to colour sources): its
    #: pixels can only be linked by lightness, and pixels of one gray are not one material. The term
    #: pulled them to one colour: a sea took the orange of the sunlit cliff beside it, the sky around
    #: the Eiffel Tower and a figure on the lawn took halos, and a teal toy and an orange disc came out
    #: gray-brown. On 12 held-out photos colorize went 2.47 -> 1.90 mean CIEDE2000 and restyle 2.82 ->
    #: 2.20 without it (with 0.5 in place of 2.0: 2.25 and 2.59); colorize-pair (a gray photo colorized
    #: from the other photo of its pair, 44 pairs) 7.10 -> 6.21, 38 pairs better. Its cost: where
    #: matches are wrong nothing evens them out (Chenonceau's stone parapet takes green blotches from
    #: the reference's trees). Neighbours found by lightness and the first two principal components of
    #: the source's own features did not help: the toy stayed gray.

    #: WLS smoothness exponent and floor (the official implementation's 1.2 and 1e-4).
    wls_alpha: float = 1.2
    wls_eps: float = 1e-4
    #: Noise floor of the detail term, in normalised Lab (1 = 100 L*): 1 L* unit.
    detail_delta: float = 0.01
    #: Colour bandwidth of the non-local weights, in normalised Lab.
    nonlocal_sigma: float = 0.1
    #: PatchMatch iterations per level: the first level starts from random fields (where it is too
    #: large for ``exact_pairs``), finer levels refine the upsampled coarser ones. Propagation
    #: jumps (jump flooding), so few iterations suffice: with jumps, 5 at L5 match what 6 gave
    #: with one-cell steps (tests/test_patchmatch.py). One iteration refines L5's exact fields at L4:
    #: against 2, every case of 10 real pairs and 15 photo cases moved by at most 0.05 mean CIEDE2000
    #: (regrade 10.22 -> 10.16, regrade-self 3.53 -> 3.57), and L4's matching takes half as long.
    iterations: tuple[tuple[int, int], ...] = ((5, 5), (4, 1), (3, 1), (2, 1), (1, 1))
    #: The first level has no fields to start from. Where it compares whole patches (not
    #: ``search_dims``) and its two maps' cells multiply to at most this many pairs (up to L5 of a
    #: 2048 working size: 96x128 cells a side, 2.3 s on a 2-core CPU), both fields are found
    #: exactly from one matrix product: faster than PatchMatch from random fields, and exact. At a
    #: 1600 working size PatchMatch took 7.5 s there and missed the best match on half the cells;
    #: the product took 0.8 s.
    exact_pairs: int = 1 << 27
    #: Longest propagation jump per level once a coarser field exists, in cells (Deep Image
    #: Analogy's 8, 4, 2, 1); from L5's random start jumps span the whole map. The upsampled field
    #: is already close where the maps are coarse (L4) and where they are finest (L1), and each
    #: jump distance costs four candidate passes: on 10 real pairs and 15 photo cases, 2 at L4 and 4
    #: at L1 in place of 8 moved every case by at most 0.04 mean CIEDE2000 (regrade 10.28 -> 10.25,
    #: multi-reference 3.38 -> 3.42) and cut L4's and L1's matching by a third and a sixth.
    refine_jumps: tuple[tuple[int, int], ...] = ((4, 2), (3, 8), (2, 8), (1, 4))
    #: Random-search radius (in cells of that level) once a coarser field exists.
    refine_radius: int = 4
    #: Levels whose matching compares patches by their first principal components (32 numbers per
    #: patch) instead of exactly (2304 at relu3_1, 1152 at relu2_1, 576 at relu1_1): far less data
    #: per candidate where the maps are largest. The components dropped are mostly texture that
    #: differs between two photos of one scene: on 10 real pairs regrade improved (13.4 -> 12.6
    #: mean CIEDE2000) and the crop cases moved by under 0.1, except multi-reference-left (6.1 ->
    #: 6.3). At relu4_1 and relu5_1, where the semantics live, exact distances matched better.
    search_dims: tuple[tuple[int, int], ...] = ((3, 32), (2, 32), (1, 32))
    #: Once a coarser field exists, every candidate match's distance also counts how unlike the two
    #: images' deep features are under p and q, times this weight (patch distances of unit features
    #: lie in [0, 4]). The context of a level is the deep layers coarser than it: relu5_1 at L4,
    #: relu5_1 and relu4_1 from L3 on (16 principal components, resampled to the level's grid).
    #: Shallow features match texture anywhere: without it, trees took the colour of the
    #: reference's clouds. On 10 real pairs and 15 photo cases (mean CIEDE2000), no context ->
    #: relu5_1 at every level with weight 0.5 / 1 / 2 / 4, then relu5_1 + relu4_1 from L3 on:
    #: regrade 12.53 -> 11.05 / 10.85 / 10.73 / 10.46 -> 10.28; recolor 3.58 -> 3.29 / 3.22 / 3.22 /
    #: 3.34 -> 3.26; multi-reference-left 6.28 -> 5.34 / 5.36 / 5.45 / 5.46 -> 5.16; colorize 3.83 ->
    #: 3.76 / 3.80 / 3.84 / 3.92 -> 3.80. relu4_1 at L4 too worsened regrade-self (3.53 -> 3.68).
    context_weight: float = 1.0
    #: The model fit's conjugate gradient stops when every channel's preconditioned residual is
    #: below this fraction of its right-hand side's. Against a solve to 1e-4, 0.01 leaves the model's
    #: output off by 0.02 L* units on average and 0.02 by 0.05 (512 px): far below what shows. On 10
    #: real pairs and 15 photo cases, 0.01 -> 0.02 moved every case by at most 0.04 mean CIEDE2000
    #: (regrade 10.26 -> 10.22, multi-reference-left 5.19 -> 5.22) and saves about a quarter of the
    #: iterations at the finest level. Each channel stops as soon as it meets the tolerance (at L1 of
    #: a 1024 working size, L* after 14 iterations, a* after 14, b* after 23, with the multigrid's
    #: exact coarsest solve), where it used to iterate until the last one had: the L1 fit at 1024
    #: takes a quarter less time, every case of 10 real pairs and 15 photo cases moved by at most 0.04
    #: (regrade 10.16 -> 10.19, regrade-self 3.58 -> 3.62).
    solver_tolerance: float = 0.02
    #: Rows per strip when recolouring a full-resolution image (keeps 12 MP in cache).
    strip_rows: int = 64

    def __post_init__(self) -> None:
        levels = tuple(self.levels) if isinstance(self.levels, (list, tuple)) else (self.levels,)
        if (not levels or not all(isinstance(v, int) and not isinstance(v, bool) for v in levels)
                or any(v not in LEVELS for v in levels) or list(levels) != sorted(set(levels), reverse=True)):
            raise ValueError(f"levels must be distinct integers from 5 down to 1, coarse to fine; got {self.levels!r}")
        object.__setattr__(self, "levels", levels)
        if not isinstance(self.transfer_lightness, bool):
            raise ValueError(f"transfer_lightness must be True or False, got {self.transfer_lightness!r}")
        for f in fields(self):
            low, high = f.metadata.get("low"), f.metadata.get("high")
            if low is None:
                continue
            value = getattr(self, f.name)
            kind = int if isinstance(low, int) else float
            wrong_type = not isinstance(value, int if kind is int else (int, float))
            if isinstance(value, bool) or wrong_type:
                raise ValueError(f"{f.name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{f.name} must be between {low} and {high}, got {value!r}")
        if self.lambda_local == 0 and self.lambda_detail == 0:
            # The data and non-local terms see a pixel's a and b only through T = a S + b: one equation
            # for two unknowns per pixel, so the model would be undetermined everywhere.
            raise ValueError("lambda_local and lambda_detail cannot both be 0: nothing would then decide how "
                             "the colour model splits each pixel's colour between its slope and its offset")

    def iterations_at(self, level: int) -> int:
        return dict(self.iterations)[level]

    def refine_jump_at(self, level: int) -> int:
        return dict(self.refine_jumps)[level]

    def search_dims_at(self, level: int) -> int | None:
        """Principal components compared at ``level``'s matching; None: exact patch distances."""
        return dict(self.search_dims).get(level)

    def with_options(self, **options) -> "TransferConfig":
        """A copy with some options changed (validated); unknown names raise ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; options are {', '.join(sorted(known))}")
        return replace(self, **options)

    @classmethod
    def options(cls) -> dict[str, object]:
        """The user-facing options: name -> dataclass field (with ``help`` and range in its metadata)."""
        return {f.name: f for f in fields(cls) if "help" in f.metadata}
