"""``quality-stats``: an encoder of no-reference technical-quality statistics, with no weights.

    enc = QualityStatsEncoder()                     # load_encoder("quality-stats") builds the same
    image_tokens = enc.encode_images(pil_images)    # [B, T, D] float32, T = 1 + regions**2
    tag_emb = enc.encode_texts(["sunset", "beach"]) # [K, D] float32, L2-normalised

What an image token holds (``STAT_NAMES``, standardised with the fixed ``STAT_MEAN`` / ``STAT_STD``):
on the centre square (the crop the explanations draw), as grey levels and colour,

- scales 1 and 2 (the square halved, then quartered, by 2x2 means): sharpness (the blur metric of
  scikit-image's ``blur_effect``), noise level (its ``estimate_sigma``), and MSCN natural-scene statistics in the
  manner of BRISQUE: a generalised Gaussian fit of the MSCN coefficients and asymmetric ones of their
  horizontal and vertical neighbour products;
- full resolution: JPEG blockiness, the excess of grey-level steps across an 8-pixel grid over
  steps inside it (horizontal and vertical, at the grid's strongest phase, so any crop offset works);
- scale 1: exposure (the shares of clipped dark and bright pixels), colourfulness (Hasler and
  Suesstrunk's) and colour cast (red-green and yellow-blue opponents of the channels' highs, a white
  patch estimate of the light's colour, and of their mean gradients, a grey-edge estimate).

Left out on purpose: the mean grey level, RMS and local contrast, the MSCN spread and the mean colour.
They describe what is photographed more than how: with them, the ranker trained on six demo photos
told the seventh's distortions apart worse (benchmarks/quality_stats.py, docs/benchmarks.md).

Token 0 is the whole square, tokens 1.. the regions of a ``regions`` x ``regions`` grid (row-major,
as CLIP's region tokens), so the ranker's cross-attention and region occlusion work unchanged.
Moment statistics of the whole square are pooled from its regions' moments (exact: the regions have
equal size); sharpness and noise of the whole square are the mean of its regions' values.

It sees blur, noise, compression, clipped exposure and colour cast. It does not see content or
aesthetics: two sharp, well exposed photos of different subjects get nearly the same tokens.

Texts: hashed word features (each lower-cased word and the whole text, signed, into ``TEXT_DIM``
buckets by a fixed hash), L2-normalised. Distinct tags get nearly orthogonal vectors and texts that
share words share components, which is all the ranker needs to learn what a tag is worth; there is
no joint image-text space to reuse. Image statistics and text features occupy disjoint dimensions
of the D-dim token, so the image-tag similarity the ranker is given is exactly 0 for every pair.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.special import gamma as gamma_fn

from .similarity import image_tag_similarity

QUALITY_STATS = "quality-stats"          # the TAGRANK_ENCODER value
QUALITY_STATS_ID = "quality-stats-v1"    # the encoder id (bump it when the features change)
DEFAULT_REGIONS = 2
TEXT_DIM = 64
MAX_SIDE = 512          # larger squares are first reduced to this side
MIN_SIDE = 64           # smaller ones are enlarged to it (the smallest regions keep 8 x 8 pixels)
C_MSCN = 1.0 / 255      # keeps MSCN finite on flat patches (BRISQUE's C = 1 on the 0..255 scale)
BLOCK = 8               # JPEG's block size

_SCALE_STATS = ["blur", "noise", "mscn_alpha",
                "h_alpha", "h_eta", "h_sigma_l", "h_sigma_r",
                "v_alpha", "v_eta", "v_sigma_l", "v_sigma_r"]
STAT_NAMES = ([f"s1_{n}" for n in _SCALE_STATS] + [f"s2_{n}" for n in _SCALE_STATS]
              + ["blockiness_h", "blockiness_v", "dark_share", "bright_share",
                 "colourfulness", "white_rg", "white_yb", "edge_rg", "edge_yb"])
N_STATS = len(STAT_NAMES)

# Standardisation constants: the mean and standard deviation of each statistic over the 600 images of
# ``modeling.ml.degraded_set.make_degraded_set(600, seed=0)`` (crops of scikit-image's photos with random
# blur, noise and JPEG), printed by ``benchmarks/quality_stats.py --constants``. Fixed, so that features
# never depend on which images a project holds.
STAT_MEAN = np.array([
    0.342602, 0.0170304, 2.03513, 0.65875, 0.694151, 0.405905, 0.670035,
    0.644655, 0.834692, 0.391274, 0.702771, 0.344588, 0.0172033, 2.65524,
    0.728804, 0.671294, 0.42936, 0.708515, 0.676432, 1.05058, 0.390182,
    0.796041, 0.44999, 0.511269, 0.0385491, 0.00212514, 0.139729, 0.057735,
    0.0528471, 0.00914083, 0.000473726,
], dtype=np.float32)
STAT_STD = np.array([
    0.16768, 0.0180125, 0.77485, 0.16414, 1.06049, 0.207588, 0.236879,
    0.159165, 1.20369, 0.208154, 0.26796, 0.189858, 0.0161442, 2.1933,
    0.311123, 1.06702, 0.224409, 0.266333, 0.26078, 1.28006, 0.196188,
    0.358494, 0.650679, 0.732245, 0.103719, 0.00676733, 0.171113, 0.187468,
    0.170102, 0.108965, 0.094034,
], dtype=np.float32)
CLIP_Z = 6.0  # standardised values are clipped to +-CLIP_Z: one odd image must not dominate a batch


@dataclass
class QualityStatsConfig:
    regions: int = DEFAULT_REGIONS   # region grid side; T = 1 + regions**2
    text_dim: int = TEXT_DIM
    standardise: bool = True         # False gives the raw statistics (to derive the constants)


# -- generalised Gaussian fits by moment matching (BRISQUE's estimators) -------------------------------
_ALPHAS = np.arange(0.2, 10.0, 0.001)
# rho(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in alpha: inverted by table look-up.
_RHO = gamma_fn(2 / _ALPHAS) ** 2 / (gamma_fn(1 / _ALPHAS) * gamma_fn(3 / _ALPHAS))


def _alpha_from_rho(rho: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(_RHO, rho), 0, len(_ALPHAS) - 1)
    return _ALPHAS[i]


def ggd_fit(m1_abs, m2):
    """Zero-mean GGD from E|x| and E[x^2]: (shape alpha, sigma)."""
    rho = m1_abs ** 2 / np.maximum(m2, 1e-12)
    return _alpha_from_rho(rho), np.sqrt(m2)


def aggd_fit(m1_abs, m2, m2_left, m2_right):
    """Asymmetric GGD from E|x|, E[x^2] and the second moments of each side: (alpha, eta, sigma_l, sigma_r)."""
    sl, sr = np.sqrt(m2_left), np.sqrt(m2_right)
    g = np.clip(sl / np.maximum(sr, 1e-12), 1e-3, 1e3)  # one-sided (flat) cells would overflow g^3
    r = m1_abs ** 2 / np.maximum(m2, 1e-12)
    big_r = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = _alpha_from_rho(big_r)
    eta = (sr - sl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
    # eta explodes as alpha nears the table's end (Gamma(2/a) / Gamma(1/a)): kept on a signed log scale.
    return alpha, np.sign(eta) * np.log1p(np.abs(eta)), sl, sr


# -- per-region statistics -------------------------------------------------------------------------------
def region_means(x: np.ndarray, r: int) -> np.ndarray:
    """Mean of a map [H, W] (H, W divisible by r) over each cell of an r x r grid -> [r*r], row-major."""
    h, w = x.shape
    rows = x.reshape(h, r, w // r).sum(axis=2)                               # [H, r] (contiguous sums: fast)
    return rows.reshape(r, h // r, r).sum(axis=1).reshape(-1) / (h // r * (w // r))


def _cells(x: np.ndarray, r: int):
    """The r x r grid's cells of [H, W(, C)], row-major (views)."""
    h, w = x.shape[:2]
    return [x[i * h // r:(i + 1) * h // r, j * w // r:(j + 1) * w // r] for i in range(r) for j in range(r)]


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 mean of [H, W(, C)] with even H, W."""
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def blur_maps(grey: np.ndarray, r: int, h_size: int = 11) -> np.ndarray:
    """Crete et al.'s no-reference blur, as ``skimage.measure.blur_effect`` computes it (Sobel of the
    image against Sobel of the image re-blurred along each axis; 0 sharp .. 1 blurred; the worse axis),
    for the whole square and each region -> [1 + r*r]. Written out here because ``blur_effect`` gives one
    number per call: sharing its maps between the regions is 2x faster (a test checks the two agree)."""
    per_axis = []
    for axis in (0, 1):
        edges = ndi.sobel(grey, axis=axis)
        sharp = np.abs(edges)
        # Sobel and the re-blur are linear and commute: one Sobel serves both (only borders differ).
        blurred = np.abs(ndi.uniform_filter1d(edges, h_size, axis=axis))
        m2 = np.maximum(sharp - blurred, 0, out=blurred)
        for m in (sharp, m2):  # zero the trimmed border in place (these maps are ours)
            m[:2] = 0
            m[-1:] = 0
            m[:, :2] = 0
            m[:, -1:] = 0
        s1, s2 = region_means(sharp, r), region_means(m2, r)
        s1, s2 = np.concatenate([[s1.sum()], s1]), np.concatenate([[s2.sum()], s2])
        per_axis.append(np.abs(s1 - s2) / np.maximum(s1, 1e-10))
    return np.maximum(*per_axis)


GAUSS_MAD = 0.6744897501960817  # scipy.stats.norm.ppf(0.75): the median absolute value of N(0, 1)


def noise_sigma(cell: np.ndarray) -> float:
    """``skimage.restoration.estimate_sigma`` of a grey image, the same computation (the median absolute
    db2 diagonal wavelet detail, zeros left out, over the Gaussian MAD), written out because the library
    evaluates scipy's normal ppf on every call, which cost more than the wavelet transform of a region
    (a test checks the two agree). A flat cell has no detail: 0."""
    import pywt

    detail = pywt.dwtn(cell, wavelet="db2")["dd"]
    detail = np.abs(detail[detail != 0])
    return float(np.median(detail) / GAUSS_MAD) if detail.size else 0.0


def scale_stats(grey: np.ndarray, r: int) -> np.ndarray:
    """Statistics of one scale -> [1 + r*r, len(_SCALE_STATS)] (whole square, then the regions)."""
    blur = blur_maps(grey, r)                                                # [1+r*r]
    noise = np.array([noise_sigma(c) for c in _cells(grey, r)])              # [r*r]

    mu = ndi.uniform_filter(grey, 7, mode="reflect")
    var = np.maximum(ndi.uniform_filter(grey * grey, 7, mode="reflect") - mu * mu, 0.0)
    local_sigma = np.sqrt(var)
    mscn = (grey - mu) / (local_sigma + C_MSCN)                              # [H,W]
    h_prod = np.zeros_like(mscn)
    v_prod = np.zeros_like(mscn)
    h_prod[:, :-1] = mscn[:, :-1] * mscn[:, 1:]  # the last column/row repeat their neighbour's product
    h_prod[:, -1] = h_prod[:, -2]
    v_prod[:-1] = mscn[:-1] * mscn[1:]
    v_prod[-1] = v_prod[-2]

    def moments(x, sides=True):  # [1+r*r] each: E|x|, E[x^2], E[x^2; x<0] / P(x<0), E[x^2; x>0] / P(x>0)
        sq = x * x
        maps = [np.abs(x), sq]
        if sides:
            neg = x < 0
            maps += [sq * neg, neg.astype(np.float32), (x > 0).astype(np.float32)]
        m = np.stack([region_means(v, r) for v in maps])
        m = np.concatenate([m.mean(axis=1, keepdims=True), m], axis=1)       # whole square first
        if not sides:
            return m[0], m[1]
        right = m[1] - m[2]  # E[x^2; x>0]: x = 0 adds nothing to either side
        return m[0], m[1], m[2] / np.maximum(m[3], 1e-6), right / np.maximum(m[4], 1e-6)

    m_abs, m2 = moments(mscn, sides=False)
    alpha, _sigma = ggd_fit(m_abs, m2)
    h = aggd_fit(*moments(h_prod))
    v = aggd_fit(*moments(v_prod))
    with_whole = lambda x: np.concatenate([[x.mean()], x])                   # noqa: E731
    return np.stack([blur, with_whole(noise), alpha, *h, *v], axis=1)


def blockiness(grey: np.ndarray, r: int) -> np.ndarray:
    """JPEG blockiness along each axis -> [1 + r*r, 2]: log of the mean absolute grey step across the
    strongest of the 8 grid phases over the mean step at the other phases (0 for no grid)."""
    out = []
    for axis in (1, 0):
        step = np.abs(np.diff(grey, axis=axis))                              # [H,W-1] or [H-1,W]
        n = step.shape[axis] // BLOCK * BLOCK
        step = step[:, :n] if axis == 1 else step[:n]
        cells = [step] + _cells(step, r)
        values = []
        for c in cells:
            # Mean step at each phase of the 8-pixel grid: [8]
            along = c.mean(axis=0) if axis == 1 else c.mean(axis=1)
            phase = along[: len(along) // BLOCK * BLOCK].reshape(-1, BLOCK).mean(axis=0)
            k = int(np.argmax(phase))
            others = (phase.sum() - phase[k]) / (BLOCK - 1)
            values.append(np.log((phase[k] + 1e-4) / (others + 1e-4)))
        out.append(values)
    return np.array(out).T                                                   # [1+r*r, 2]


def channel_highs(rgb: np.ndarray, q: float = 0.999) -> np.ndarray:
    """Each channel's q-quantile of [H,W,3] -> [3], as ``np.percentile`` (linear) computes it, from one
    partition of each channel (np.percentile's own overhead was a tenth of the encoder's time)."""
    x = np.ascontiguousarray(rgb.reshape(-1, 3).T)                          # [3, N], a copy we may reorder
    pos = q * (x.shape[1] - 1)
    lo = int(pos)
    hi = min(lo + 1, x.shape[1] - 1)
    x.partition([lo, hi], axis=1)
    return x[:, lo] + (x[:, hi] - x[:, lo]) * (pos - lo)


def colour_stats(rgb: np.ndarray, grey: np.ndarray, r: int) -> np.ndarray:
    """Exposure (clipped shares) and colour of [H,W,3] in 0..1 -> [1 + r*r, 7]."""
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    maps = [(grey < 0.02).astype(np.float32), (grey > 0.98).astype(np.float32), rg, rg * rg, yb, yb * yb]
    m = np.stack([region_means(x, r) for x in maps])                         # [6, r*r]
    m = np.concatenate([m.mean(axis=1, keepdims=True), m], axis=1)           # [6, 1+r*r]
    dark, bright, m_rg, sq_rg, m_yb, sq_yb = m
    sd_rg, sd_yb = np.sqrt(np.maximum(sq_rg - m_rg ** 2, 0)), np.sqrt(np.maximum(sq_yb - m_yb ** 2, 0))
    colourfulness = np.hypot(sd_rg, sd_yb) + 0.3 * np.hypot(m_rg, m_yb)
    # Two estimates of the light's colour that content moves less than the mean colour does (a tint shows in
    # both, a warm or blue subject mostly not): white patch, the channels' highs (99.9th percentiles: the
    # brightest pixels are near-white); grey edge, the channels' mean absolute gradients (edges are grey).
    highs = np.stack([channel_highs(c) for c in [rgb] + _cells(rgb, r)])
    highs = np.log(highs + 0.02)                                             # [1+r*r, 3]
    grad = np.abs(np.diff(rgb, axis=0))[:, :-1] + np.abs(np.diff(rgb, axis=1))[:-1]  # [H-1,W-1,3]
    edges = np.stack([region_means(grad[: -(grad.shape[0] % r) or None, : -(grad.shape[1] % r) or None, k], r)
                      for k in range(3)], axis=1)                            # [r*r, 3]
    edges = np.log(np.concatenate([edges.mean(axis=0, keepdims=True), edges]) + 1e-3)
    opponents = lambda c: (c[:, 0] - c[:, 1], 0.5 * (c[:, 0] + c[:, 1]) - c[:, 2])  # noqa: E731  (rg, yb)
    return np.stack([dark, bright, colourfulness, *opponents(highs), *opponents(edges)], axis=1)


def square_pixels(image, multiple: int = 4 * DEFAULT_REGIONS) -> np.ndarray:
    """PIL image -> the centre square as RGB float32 [S,S,3] in 0..1, S <= MAX_SIDE, S a multiple of
    ``multiple`` (up to multiple - 1 edge pixels are dropped so that both halvings and the grid divide evenly)."""
    from PIL import Image

    im = image.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side > MAX_SIDE or side < MIN_SIDE:
        side = min(max(side, MIN_SIDE), MAX_SIDE)
        im = im.resize((side, side), Image.BOX if side == MAX_SIDE else Image.BICUBIC)
    keep = max(side // multiple * multiple, multiple)
    return np.asarray(im)[:keep, :keep].astype(np.float32) * np.float32(1 / 255)


def raw_stats(image, regions: int = DEFAULT_REGIONS) -> np.ndarray:
    """PIL image -> raw statistics [1 + regions**2, N_STATS] float64, in ``STAT_NAMES`` order."""
    rgb = square_pixels(image, multiple=4 * regions)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)         # [S,S]
    grey1 = _halve(grey)
    grey2 = _halve(grey1)
    # Colour and exposure are means: every other pixel measures them as well as all of them.
    return np.concatenate([scale_stats(grey1, regions), scale_stats(grey2, regions), blockiness(grey, regions),
                           colour_stats(np.ascontiguousarray(rgb[::2, ::2]), grey[::2, ::2], regions)], axis=1)


# -- texts ------------------------------------------------------------------------------------------------
def hashed_text_features(texts, dim: int = TEXT_DIM) -> np.ndarray:
    """Texts -> [N, dim] float32, L2-normalised: each lower-cased word, and the whole text, adds +-1 to
    one bucket chosen by a fixed hash (blake2b, so every process and machine agrees)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        normal = " ".join(re.findall(r"\w+", text.lower()))
        for feature in [f"w:{w}" for w in normal.split()] + [f"t:{normal}"]:
            h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = np.linalg.norm(out[i])
        if norm > 0:
            out[i] /= norm
    return out


# -- the encoder ---------------------------------------------------------------------------------------
class QualityStatsEncoder:
    """Same interface as ``modeling.ml.encoder.Encoder``: encode_images, encode_texts, similarity."""

    def __init__(self, cfg: QualityStatsConfig | None = None):
        self.cfg = cfg or QualityStatsConfig()
        self.regions = self.cfg.regions
        suffix = "" if self.regions == DEFAULT_REGIONS else f"@regions={self.regions}"
        suffix += "" if self.cfg.text_dim == TEXT_DIM else f"@text={self.cfg.text_dim}"
        suffix += "" if self.cfg.standardise else "@raw"
        self.encoder_id = QUALITY_STATS_ID + suffix
        self.n_tokens = 1 + self.regions * self.regions
        self.dim = N_STATS + self.cfg.text_dim      # D: statistics first, then the text dimensions
        self.device = "cpu"
        self.batch_size = 64  # pictures per call; the statistics run on the CPU, one picture at a time

    def encode_images(self, images, batch_size: int | None = None) -> np.ndarray:
        """PIL images -> tokens [B, T, D] float32 (whole square, then regions; zeros in the text dims)."""
        out = np.zeros((len(images), self.n_tokens, self.dim), dtype=np.float32)
        for i, image in enumerate(images):
            stats = np.nan_to_num(raw_stats(image, self.regions))                # [T, N_STATS]
            if self.cfg.standardise:
                stats = np.clip((stats - STAT_MEAN) / STAT_STD, -CLIP_Z, CLIP_Z)
            out[i, :, :N_STATS] = stats
        return out

    def encode_texts(self, texts, batch_size: int | None = None) -> np.ndarray:
        """Texts -> [K, D] float32, L2-normalised (zeros in the statistics dims)."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, N_STATS:] = hashed_text_features(texts, self.cfg.text_dim)
        return out

    def similarity(self, image_tokens, tag_tokens, tag_mask=None) -> np.ndarray:
        """Image-tags cosine similarity [B]: 0 here, the two live in disjoint dimensions."""
        return image_tag_similarity(image_tokens, tag_tokens, tag_mask)
