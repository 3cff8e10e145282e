"""End-to-end tests of Neural Color Transfer on real photos with the shared VGG16."""

import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from colorizer import ImageError, TransferConfig
from colorizer.color import delta_e_2000, is_gray, lab_to_rgb, rgb_to_lab
from colorizer.images import to_pil, to_tensor
from colorizer.paths import EXAMPLES, SHARED_PAIRS, SHARED_PHOTOS

SIZE = 192  # small working size: these tests check behaviour; the benchmark measures quality at 512


def _mean_de(a: Image.Image, b: Image.Image) -> float:
    return delta_e_2000(rgb_to_lab(to_tensor(a)), rgb_to_lab(to_tensor(b))).mean().item()


def test_full_resolution_levels_timings_and_progress(any_nct):
    source = Image.open(EXAMPLES / "mountain_lake.jpg").resize((333, 171))  # odd size, not a multiple of 16
    calls = []
    out = any_nct.transfer(source, Image.open(EXAMPLES / "alpine_dusk.jpg"), working_size=SIZE,
                       progress=lambda step, total, msg: calls.append((step, total)))
    assert out.image.size == (333, 171) and out.image.mode == "RGB"
    assert list(out.levels) == [5, 4, 3, 2, 1] and calls == [(i, 5) for i in range(1, 6)]
    assert {"features", "matching", "voting", "model fit", "upsample", "total"} <= set(out.timings)


def test_a_source_smaller_than_the_working_size_is_the_finest_levels_result_at_its_own_size(any_nct):
    source = Image.open(EXAMPLES / "mountain_lake.jpg").resize((120, 90))  # matching runs at 192x144
    out = any_nct.transfer(source, Image.open(EXAMPLES / "alpine_dusk.jpg"), working_size=SIZE)
    assert out.image.size == (120, 90) and out.levels[1].size == (192, 144)
    # 0.8 on the shared VGG16; 7 when the model is resampled mirrored
    assert _mean_de(out.image, out.levels[1].resize((120, 90), Image.Resampling.BOX)) < 1.5


def test_a_day_photo_takes_a_dusk_references_colour_and_light(nct):
    source = Image.open(EXAMPLES / "mountain_lake.jpg").resize((333, 171))
    out = nct.transfer(source, Image.open(EXAMPLES / "alpine_dusk.jpg"), working_size=SIZE)
    # The dusk reference is warm and dark: the blue sky must have moved toward orange (b* up), and darkened.
    src_lab, out_lab = rgb_to_lab(to_tensor(source)), rgb_to_lab(to_tensor(out.image))
    assert out_lab[2, :40].mean() > src_lab[2, :40].mean() + 10
    assert (out_lab[0] - src_lab[0]).mean() < -3


def test_deterministic_per_seed(any_nct):
    src, ref = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"
    a = any_nct.transfer(src, ref, working_size=SIZE, levels=(5, 4, 3), seed=3).image
    b = any_nct.transfer(src, ref, working_size=SIZE, levels=(5, 4, 3), seed=3).image
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_strength_blends_the_output_only(any_nct):
    src, ref = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"
    runs = {s: any_nct.transfer(src, ref, working_size=SIZE, levels=(5, 4), strength=s) for s in (0.0, 0.5, 1.0)}
    assert _mean_de(runs[0.0].image, Image.open(src)) < 0.5
    # The levels do not depend on strength: it does not feed the next level's matching.
    for s in (0.0, 0.5):
        assert all(np.array_equal(np.asarray(runs[s].levels[k]), np.asarray(runs[1.0].levels[k])) for k in (5, 4))
    # Half strength is halfway in Lab between the source and the full transfer (up to rounding and gamut clipping).
    lab = {s: rgb_to_lab(to_tensor(r.image)) for s, r in runs.items()}
    assert ((lab[0.5] - (lab[0.0] + lab[1.0]) / 2).abs().mean((1, 2)) < 1.0).all()


def test_chroma_only_keeps_lightness(any_nct):
    src, ref = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"
    chroma = any_nct.transfer(src, ref, working_size=SIZE, levels=(5, 4), transfer_lightness=False).image
    lightness = {name: rgb_to_lab(to_tensor(img))[0] for name, img in (("out", chroma), ("src", Image.open(src)))}
    assert (lightness["out"] - lightness["src"]).abs().mean() < 1.5  # up to gamut clipping
    assert _mean_de(chroma, Image.open(src)) > 5


def test_gray_source_keeps_lightness(any_nct):
    gray = Image.open(EXAMPLES / "green_hills.jpg").convert("L")
    out = any_nct.transfer(gray, EXAMPLES / "ochre_hills.jpg", working_size=SIZE)
    lab = rgb_to_lab(to_tensor(out.image))
    src_l = rgb_to_lab(to_tensor(gray.convert("RGB")))[0]
    assert (lab[0] - src_l).abs().mean() < 1.0
    assert lab[1:].norm(dim=0).mean() > 8  # it is coloured now


def test_a_gray_sources_chroma_follows_its_lightness_inside_a_texture(nct):
    """Leaves whose light tips are yellow and dark hollows green (b* rises 1.2 per L*): colour locally
    linear in lightness, as colorization assumes. Source: a gray copy; reference: the colour one,
    mirrored. The chroma must follow the lightness at the texture's scale (blobs of 4-8 px), not only
    on average. With the chroma smoothed along the lightness alone, as the paper's per-channel model
    does for a gray source, the slope was 0.33 and b* was 8.3 off; regressed on it, 0.90 and 2.7."""
    h, w = 192, 256
    noise = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, h // 4, w // 4))).float()
    texture = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
    lightness = 55 + 12 * texture / texture.std()
    truth = to_pil(lab_to_rgb(torch.stack([lightness, torch.full_like(lightness, -20), 25 + 1.2 * (lightness - 55)])))
    gray = truth.convert("L").convert("RGB")
    out = nct.transfer(gray, ImageOps.mirror(truth), working_size=SIZE).image
    inner = (slice(16, -16), slice(16, -16))  # away from the borders
    l_src, b_truth, b_out = (rgb_to_lab(to_tensor(img))[i][inner].flatten() for img, i in ((gray, 0), (truth, 2), (out, 2)))
    centred = l_src - l_src.mean()
    slope = (centred * b_out).sum() / centred.square().sum()
    truth_slope = (centred * b_truth).sum() / centred.square().sum()
    assert slope > 0.6 * truth_slope, (slope, truth_slope)
    assert (b_out - b_truth).abs().mean() < 4.5


def test_multiple_references_take_each_part_from_its_match(nct):
    # Source: a sea photo beside a desert photo. Each reference holds one of the two scenes,
    # recoloured differently; each half of the result should follow the reference showing it.
    sea = Image.open(EXAMPLES / "coast_day.jpg").resize((256, 256))
    desert = Image.open(EXAMPLES / "desert_crater.jpg").resize((256, 256))
    source = Image.new("RGB", (512, 256))
    source.paste(sea, (0, 0))
    source.paste(desert, (256, 0))
    green_sea = Image.fromarray(np.asarray(sea)[:, ::-1, [1, 0, 2]].copy())  # swap R and G: sea turns green-ish
    blue_desert = Image.fromarray(np.asarray(desert)[:, ::-1, [2, 1, 0]].copy())  # swap R and B: desert turns blue
    out = nct.transfer(source, [green_sea, blue_desert], working_size=256)
    left, right = out.image.crop((0, 0, 256, 256)), out.image.crop((256, 0, 512, 256))
    assert _mean_de(left, Image.fromarray(np.asarray(sea)[:, :, [1, 0, 2]].copy())) < _mean_de(left, sea)
    assert _mean_de(right, Image.fromarray(np.asarray(desert)[:, :, [2, 1, 0]].copy())) < _mean_de(right, desert)


def test_a_second_reference_supplies_what_the_first_lacks(nct):
    """The protocol's multi-reference case on canyon05 (references: the left and right 55% of the photo),
    where choosing the reference by the fine levels' features alone made two references worse than one."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip("needs ../shared/data/photos")
    from colorizer.evaluation import benchmark_photos, make_case, score

    photo = next(p for p in benchmark_photos() if p.stem.startswith("canyon05"))
    two, left = (make_case(photo, kind) for kind in ("multi-reference", "multi-reference-left"))
    de_two = score(nct.transfer(two.source, two.references).image, two.truth)[0]
    de_left = score(nct.transfer(left.source, left.references).image, left.truth)[0]
    assert de_two < 0.8 * de_left, (de_two, de_left)  # the old choice: 6.98 against 5.96


def test_a_parks_trees_do_not_take_the_colour_of_the_reference_sky(nct):
    """Regrade pair mvtb/eiffel-2 -> categorization_monuments/eiffelTower: the reference barely shows
    trees, and the source's row of dark trees on the left used to match the reference's sky and come
    out sky blue. Their mean Lab colour must stay nearer the truth's trees than the output's own sky."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip("needs ../shared/data/photos")
    from colorizer.evaluation import make_pair_case, photo_pairs

    a, b = next((a, b) for a, b in photo_pairs() if (a.parent.name, a.stem, b.parent.name, b.stem)
                == ("mvtb", "eiffel-2", "categorization_monuments", "eiffelTower"))
    case = make_pair_case(a, b)
    out = nct.transfer(case.source, case.references).image
    h, w = out.height, out.width
    trees, sky = (slice(None), slice(int(0.68 * h), int(0.88 * h)), slice(0, int(0.3 * w))), \
        (slice(None), slice(int(0.05 * h), int(0.25 * h)), slice(None))
    lab, truth = rgb_to_lab(to_tensor(out)), rgb_to_lab(to_tensor(case.truth))
    ours = lab[trees].mean((1, 2))
    to_truth = (ours - truth[trees].mean((1, 2))).norm()
    to_sky = (ours - lab[sky].mean((1, 2))).norm()
    # Without the matching context: 41 from the truth's trees, 22 from the sky.
    assert to_truth < 0.5 * to_sky, (to_truth, to_sky)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(levels=(3, 4)), "levels"),
        (dict(levels=(6,)), "levels"),
        (dict(levels=7), "levels"),
        (dict(levels=()), "levels"),
        (dict(strength=1.5), "strength"),
        (dict(working_size=10), "working_size"),
        (dict(working_size="512"), "working_size"),
        (dict(working_size=512.5), "working_size"),
        (dict(completeness=-1), "completeness"),
        (dict(lambda_local=float("inf")), "lambda_local"),
        (dict(lambda_nonlocal=float("nan")), "lambda_nonlocal"),
        (dict(lambda_detail=1e300), "lambda_detail"),
        (dict(lambda_local=0, lambda_detail=0.0), "lambda_local and lambda_detail cannot both be 0"),
        (dict(clusters=-3), "clusters"),
        (dict(clusters=0), "clusters"),
        (dict(transfer_lightness="yes"), "transfer_lightness"),
        (dict(keep_lightness=True), "unknown option"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransferConfig().with_options(**kwargs)


def test_bad_options_fail_before_any_work(any_nct):
    with pytest.raises(ValueError, match="working_size"):
        any_nct.transfer(EXAMPLES / "coast_day.jpg", "no such file.jpg", working_size=10)


def test_bad_images(any_nct, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="reference 2"):
        any_nct.transfer(EXAMPLES / "coast_day.jpg", [EXAMPLES / "coast_sunset.jpg", bad])
    with pytest.raises(ImageError, match="at least one reference"):
        any_nct.transfer(EXAMPLES / "coast_day.jpg", [])
    with pytest.raises(ImageError, match="over the limit"):
        any_nct.transfer(EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg", max_pixels=100_000)


def test_quality_floor_on_held_out_photos(nct):
    """A regression guard on real photos, sized for CI; the benchmark (benchmarks/nct_quality.py) measures quality."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip("needs ../shared/data/photos")
    from benchmarks.baselines import reinhard
    from colorizer.evaluation import benchmark_photos, make_case, make_pair_case, photo_pairs, score

    kinds = ("recolor", "colorize", "restyle", "regrade-self")
    cases = [make_case(p, kind) for p in benchmark_photos(2) for kind in kinds]
    gate = [(a, b) for a, b in photo_pairs() if "brandenburg" in a.name]  # two photos of one scene in the same light
    cases += [make_pair_case(a, b) for a, b in gate]
    ours, peer = {}, {}
    for case in cases:
        ours.setdefault(case.kind, []).append(score(nct.transfer(case.source, case.references).image, case.truth)[0])
        peer.setdefault(case.kind, []).append(score(reinhard(case.source, case.reference), case.truth)[0])
    for kind in ours:
        # Reinhard is a global transfer: a method that uses correspondences must be far better where they exist.
        assert statistics.mean(ours[kind]) < 0.7 * statistics.mean(peer[kind]), (kind, ours[kind], peer[kind])


def test_the_colorize_pair_case_is_one_photo_in_gray_and_the_other_in_colour():
    from colorizer.evaluation import make_pair_case, photo_pairs

    if not SHARED_PAIRS.is_file():
        pytest.skip("needs ../shared/data/photos/pairs.csv")
    a, b = next((a, b) for a, b in photo_pairs() if a.stem == "motorcycle_left")
    case = make_pair_case(a, b, "colorize-pair")
    assert is_gray(to_tensor(case.source)) and not is_gray(to_tensor(case.truth))
    assert case.truth.size == case.source.size == Image.open(a).size and case.reference.size == Image.open(b).size
    # The gray source is the truth's own lightness.
    assert (rgb_to_lab(to_tensor(case.source))[0] - rgb_to_lab(to_tensor(case.truth))[0]).abs().mean() < 1.5
    with pytest.raises(ValueError, match="unknown case"):
        make_pair_case(a, b, "recolor")


def test_reference_structure_does_not_ghost_into_flat_regions(nct):
    """A flat wall in the source, a striped one in the reference: the colour moves, the stripes must not."""
    g = np.random.default_rng(0)
    h, w = 192, 256
    source = np.empty((h, w, 3))
    source[:] = (70, 110, 170)  # a flat blue wall ...
    source[64:128, 96:160] = (30, 30, 30)  # ... with a dark window
    source += g.normal(0, 1.5, source.shape)  # sensor noise
    reference = np.empty((h, w, 3))
    stripes = (np.arange(w) // 6) % 2 == 0
    reference[:] = np.where(stripes[:, None], (235, 150, 60), (120, 60, 20))  # an orange striped wall
    reference[64:128, 96:160] = (30, 30, 30)
    to_image = lambda a: Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))  # noqa: E731
    out = np.asarray(nct.transfer(to_image(source), to_image(reference), working_size=SIZE).image, float)
    wall = (slice(16, 48), slice(16, -16))  # above the window, away from the borders
    src_lab, out_lab, ref_lab = (rgb_to_lab(to_tensor(to_image(a)))[:, wall[0], wall[1]]
                                 for a in (source, out, reference))
    # The colour moved most of the way to the reference's mean ...
    moved = (out_lab.mean((1, 2)) - ref_lab.mean((1, 2))).norm() / (src_lab.mean((1, 2)) - ref_lab.mean((1, 2))).norm()
    assert moved < 0.5, moved
    # ... but the wall stayed flat: its spread is the source's noise, not the stripes (their std is ~20 L*).
    assert out_lab.std((1, 2)).max() < 2 * src_lab.std((1, 2)).max() + 0.5, (out_lab.std((1, 2)), src_lab.std((1, 2)))


def test_one_region_of_the_source_takes_one_transfer_not_blocks(nct):
    """The app's coast example at the default working size: the sea is one region of the source, its far
    part 5 L* lighter than its near part. With the paper's 10 clusters, the near sea
    fell into other clusters than the far sea and came out in dark blocks with straight borders, 25 L*
    darker than the far sea (TransferConfig.clusters)."""
    source = Image.open(EXAMPLES / "coast_day.jpg")

    def far_minus_near(image: Image.Image) -> float:
        lightness = rgb_to_lab(to_tensor(image))[0]
        return (lightness[100:135, 20:130].mean() - lightness[150:215, 20:130].mean()).item()

    out_gap = far_minus_near(nct.transfer(source, EXAMPLES / "coast_sunset.jpg").image)
    source_gap = far_minus_near(source)
    assert abs(out_gap - source_gap) < 6, (out_gap, source_gap)


def test_a_gray_sources_sea_does_not_take_the_colour_of_the_cliff_beside_it(nct):
    """Colorize (the protocol's case) of the held-out bwerner0: a tower on a sunlit cliff above a blue sea.
    Linked to the cliff's pixels of the same gray by the non-local term, the sea beside the cliff came out in
    an orange band (p95 CIEDE2000 over the sea 11.8, mean 3.5; TransferConfig.lambda_nonlocal); now 5.0 and 1.8."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip("needs ../shared/data/photos")
    from colorizer.evaluation import benchmark_photos, make_case

    case = make_case(next(p for p in benchmark_photos() if p.stem == "bwerner0@2x"), "colorize")
    truth = rgb_to_lab(to_tensor(case.truth))
    sea = truth[2] < -3  # blue in the truth, right of the tower and below the horizon
    sea[:, :200] = sea[:130] = False
    error = delta_e_2000(rgb_to_lab(to_tensor(nct.transfer(case.source, case.references).image)), truth)[sea]
    assert sea.sum() > 10_000 and error.quantile(0.95) < 8, error.quantile(0.95)


def test_batch_matches_single_transfers_skips_bad_files_and_resumes(any_nct, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("green_hills", "coast_day"):
        Image.open(EXAMPLES / f"{name}.jpg").save(folder / f"{name}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    options = dict(working_size=96, levels=(5, 4, 3))
    messages = []
    first = any_nct.transfer_batch(folder, EXAMPLES / "ochre_hills.jpg", tmp_path / "out", **options,
                               progress=lambda done, total, msg: messages.append((done, total, msg)))
    assert sorted(p.name for p in first.written) == ["coast_day.png", "green_hills.png"]
    assert list(first.failed) == [folder / "broken.jpg"] and "broken.jpg" in first.failed[folder / "broken.jpg"]
    assert [m[:2] for m in messages] == [(1, 3), (2, 3), (3, 3)] and "failed" in messages[0][2]
    # The references are read once for the whole batch; each result is what a single transfer gives.
    single = any_nct.transfer(folder / "green_hills.jpg", EXAMPLES / "ochre_hills.jpg", **options).image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "green_hills.png")), np.asarray(single))

    stamps = {p: p.stat().st_mtime_ns for p in first.written}
    again = any_nct.transfer_batch(folder, EXAMPLES / "ochre_hills.jpg", tmp_path / "out", **options)
    assert again.written == [] and sorted(again.skipped) == sorted(first.written) and list(again.failed) == list(
        first.failed)
    assert {p: p.stat().st_mtime_ns for p in first.written} == stamps  # finished images are not redone


def test_the_whole_pipeline_runs_on_a_tiny_random_vgg(tiny_vgg_path):
    """What a clone without ../shared runs: every level, both kinds of source, the full-resolution output."""
    from colorizer import NeuralColorTransfer

    nct = NeuralColorTransfer.from_pretrained(tiny_vgg_path, device="cpu")
    source = Image.open(EXAMPLES / "green_hills.jpg")
    for src in (source, source.convert("L")):
        out = nct.transfer(src, EXAMPLES / "ochre_hills.jpg", working_size=96)
        assert out.image.size == source.size and sorted(out.levels) == [1, 2, 3, 4, 5]
        assert np.asarray(out.image).std() > 1  # a real image, not a flat fill


def test_each_level_is_handed_over_as_it_is_computed(any_nct):
    seen = []
    out = any_nct.transfer(EXAMPLES / "green_hills.jpg", EXAMPLES / "ochre_hills.jpg", working_size=96,
                           levels=(5, 3, 1), on_level=lambda level, image: seen.append((level, image)))
    assert [level for level, _ in seen] == [5, 3, 1]
    assert all(image is out.levels[level] for level, image in seen)
