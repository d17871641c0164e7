"""Synthetic satellite scenes: seeded, fast (NumPy only), any band count.

``synthetic_change_pair`` renders two dates of one scene: textured ground (vegetation and soil), roads,
and buildings (rectangles with pitched or flat roofs, L-shapes) some of which appear or vanish between the
dates. The change mask is exactly the footprints of the buildings that appeared or vanished. The dates
also differ in ways that are NOT change: global illumination, haze, seasonal vegetation tint, the
direction and length of cast shadows, construction earth around changed sites, a misregistration of up to
two pixels and sensor noise. ``synthetic_segmentation_scene`` renders one date with a class mask.

Bands follow a plausible spectrum: band 0, 1, 2 = red, green, blue, band 3 = near infrared (bright on
vegetation), bands 4 and 5 = short-wave infrared, further bands interpolate between NIR and SWIR.
A single band is the panchromatic mean of red, green and blue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantis.data.shapes import polygon_box

__all__ = ["SEGMENTATION_CLASSES", "synthetic_change_pair", "synthetic_segmentation_scene"]

SEGMENTATION_CLASSES = ("background", "building", "road")

_MARGIN = 2  # canvas border that the misregistration shifts into
# Reflectance of each material in the red, green, blue, NIR, SWIR1, SWIR2 bands.
_GREEN_VEGETATION = np.array([0.07, 0.14, 0.05, 0.48, 0.22, 0.10])
_DRY_VEGETATION = np.array([0.26, 0.23, 0.12, 0.30, 0.36, 0.26])
_SOIL = np.array([0.38, 0.31, 0.23, 0.40, 0.48, 0.40])
_EARTHWORKS = np.array([0.58, 0.50, 0.40, 0.52, 0.58, 0.52])
_ASPHALT = np.array([0.20, 0.20, 0.21, 0.23, 0.25, 0.23])
_HAZE = np.array([0.72, 0.74, 0.80, 0.60, 0.50, 0.45])
_ROOFS = np.array(
    [
        [0.62, 0.24, 0.16, 0.40, 0.45, 0.40],  # red tiles
        [0.56, 0.56, 0.55, 0.50, 0.52, 0.48],  # concrete
        [0.88, 0.88, 0.85, 0.76, 0.70, 0.65],  # white membrane
        [0.18, 0.34, 0.62, 0.30, 0.28, 0.25],  # blue metal
        [0.74, 0.40, 0.18, 0.42, 0.46, 0.40],  # terracotta
        [0.58, 0.70, 0.74, 0.55, 0.50, 0.45],  # pale cyan metal
    ]
)


def _band_matrix(bands: int) -> np.ndarray:
    """6 x bands matrix mapping the reference spectrum to the requested band count."""
    if bands < 1:
        raise ValueError(f"bands must be at least 1, got {bands}")
    if bands == 1:
        return np.array([[1 / 3], [1 / 3], [1 / 3], [0.0], [0.0], [0.0]])
    matrix = np.zeros((6, bands))
    for b in range(min(bands, 6)):
        matrix[b, b] = 1.0
    for j in range(bands - 6):  # extra bands: piecewise linear between NIR (3), SWIR1 (4), SWIR2 (5)
        position = 3.0 + 2.0 * (j + 0.5) / (bands - 6)
        low = int(np.floor(position))
        matrix[low, 6 + j] = 1.0 - (position - low)
        if low < 5:
            matrix[low + 1, 6 + j] = position - low
    return matrix


def _smooth_noise(rng: np.random.Generator, count: int, shape: tuple[int, int], wavelength: float) -> np.ndarray:
    """``count`` smooth random fields (zero mean, unit std) with features about ``wavelength`` pixels wide.

    White noise is low-pass filtered by FFT on a grid 4 times coarser, then upsampled bilinearly.
    """
    coarse = (shape[0] // 4 + 2, shape[1] // 4 + 2)
    white = rng.standard_normal((count, *coarse))
    fy = np.fft.fftfreq(coarse[0])[:, None]
    fx = np.fft.rfftfreq(coarse[1])[None, :]
    response = np.exp(-((fy**2 + fx**2) * (np.pi * wavelength / 4.0) ** 2) / 2.0)
    fields = np.fft.irfft2(np.fft.rfft2(white) * response, s=coarse)
    fields = _upsample(_upsample(fields.astype(np.float32), shape[0], axis=1), shape[1], axis=2)
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-6
    return fields


def _upsample(array: np.ndarray, fine: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` to ``fine`` samples, 4 per coarse sample (no BLAS)."""
    coarse = array.shape[axis]
    position = np.clip((np.arange(fine) + 0.5) / 4.0 + 0.5, 0.0, coarse - 1.0)
    low = np.minimum(np.floor(position).astype(int), coarse - 2)
    shape = [1] * array.ndim
    shape[axis] = fine
    weight = (position - low).astype(np.float32).reshape(shape)
    return np.take(array, low, axis=axis) * (1 - weight) + np.take(array, low + 1, axis=axis) * weight


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of N x 2 points, in order (monotone chain)."""
    pts = sorted({(float(p[0]), float(p[1])) for p in points})
    if len(pts) < 3:
        return np.array(pts)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilates a boolean mask by a square of half-width ``pixels``, the output padded by ``pixels``."""
    height, width = mask.shape
    padded = np.zeros((height + 2 * pixels, width + 2 * pixels), dtype=bool)
    rows = np.zeros((height + 2 * pixels, width), dtype=bool)
    for step in range(2 * pixels + 1):
        rows[step : step + height] |= mask
    for step in range(2 * pixels + 1):
        padded[:, step : step + width] |= rows
    return padded


@dataclass(eq=False)
class _Building:
    vertices: np.ndarray  # N x 2 (row, col) on the canvas
    top: int  # footprint box on the canvas
    left: int
    footprint: np.ndarray  # boolean h x w inside the box
    ridge: np.ndarray | None  # boolean h x w: the darker half of a pitched roof; None for a flat roof
    roof: int  # index into _ROOFS
    brightness: float
    height: float  # shadow length in pixels when the sun is 45 degrees high
    state: str = "kept"  # "kept", "appeared" or "vanished"
    earthworks: bool = False  # bare earth on the site while the building is absent

    def box(self, grow: int = 0) -> tuple[slice, slice]:
        return (
            slice(self.top - grow, self.top + self.footprint.shape[0] + grow),
            slice(self.left - grow, self.left + self.footprint.shape[1] + grow),
        )

    def stands_at(self, date: int | None) -> bool:
        """Whether the building exists at ``date`` (1 or 2; ``None`` for a single-date scene)."""
        if date is None or self.state == "kept":
            return True
        return self.state == ("vanished" if date == 1 else "appeared")


def _rotate(points: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return centre + points @ np.array([[cos, sin], [-sin, cos]])


def _roads(rng: np.random.Generator, shape: tuple[int, int], orientation: float) -> np.ndarray:
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)[None, :]
    roads = np.zeros(shape, dtype=bool)
    for i in range(int(rng.integers(1, 4))):
        angle = orientation + (np.pi / 2) * (i % 2) + rng.normal(0.0, 0.05)
        point = rng.uniform(0.15, 0.85, size=2) * np.array(shape)
        distance = np.abs((rows - point[0]) * np.cos(angle) - (cols - point[1]) * np.sin(angle))
        roads |= distance < rng.uniform(2.5, 4.5)
    return roads


def _buildings(
    rng: np.random.Generator, shape: tuple[int, int], orientation: float, occupied: np.ndarray
) -> list[_Building]:
    """Non-overlapping buildings, 3 pixels apart, off the roads (``occupied`` is updated)."""
    gap = 3
    buildings: list[_Building] = []
    wanted = int(rng.integers(8, 22))
    for _ in range(120):
        if len(buildings) >= wanted:
            break
        long_side = rng.uniform(12.0, 40.0)
        short_side = rng.uniform(8.0, min(long_side, 28.0))
        if rng.random() < 0.3:  # L-shape: a rectangle with one corner cut out
            cut_l, cut_s = rng.uniform(0.35, 0.65) * long_side, rng.uniform(0.35, 0.65) * short_side
            local = np.array(
                [
                    [0, 0],
                    [0, long_side],
                    [short_side - cut_s, long_side],
                    [short_side - cut_s, cut_l],
                    [short_side, cut_l],
                    [short_side, 0],
                ]
            )
        else:
            local = np.array([[0, 0], [0, long_side], [short_side, long_side], [short_side, 0]])
        local = local - local.mean(axis=0)
        angle = orientation + (np.pi / 2) * int(rng.integers(2)) + rng.normal(0.0, 0.03)
        centre = rng.uniform(0, 1, size=2) * np.array(shape)
        vertices = _rotate(local, centre, angle)
        top, left, footprint = polygon_box(vertices, shape)
        if footprint.sum() < 40:
            continue
        rows, cols = slice(top, top + footprint.shape[0]), slice(left, left + footprint.shape[1])
        if (occupied[rows, cols] & footprint).any():
            continue
        grown = _grow(footprint, gap)
        r0, c0 = top - gap, left - gap
        rr = slice(max(r0, 0), min(r0 + grown.shape[0], shape[0]))
        cc = slice(max(c0, 0), min(c0 + grown.shape[1], shape[1]))
        occupied[rr, cc] |= grown[rr.start - r0 : rr.stop - r0, cc.start - c0 : cc.stop - c0]
        ridge = None
        if len(local) == 4 and rng.random() < 0.6:
            r = np.arange(rows.start, rows.stop)[:, None] - centre[0]
            c = np.arange(cols.start, cols.stop)[None, :] - centre[1]
            ridge = footprint & (r * np.cos(angle) - c * np.sin(angle) > 0)
        buildings.append(
            _Building(
                vertices=vertices,
                top=top,
                left=left,
                footprint=footprint,
                ridge=ridge,
                roof=int(rng.integers(len(_ROOFS))),
                brightness=float(rng.uniform(0.9, 1.1)),
                height=float(rng.uniform(3.0, 9.0)),
            )
        )
    return buildings


def _assign_changes(rng: np.random.Generator, buildings: list[_Building], area: int) -> None:
    """Marks buildings as appeared or vanished until about 3 to 15 % of the scene has changed."""
    target = rng.uniform(0.03, 0.15) * area
    changed = 0
    for index in rng.permutation(len(buildings)):
        if changed >= target:
            break
        building = buildings[index]
        building.state = "appeared" if rng.random() < 0.65 else "vanished"
        building.earthworks = rng.random() < 0.5
        changed += int(building.footprint.sum())


@dataclass(eq=False)
class _Palette:
    """Material spectra already mapped to the requested bands (C vectors, float32)."""

    green: np.ndarray
    dry: np.ndarray
    soil: np.ndarray
    earthworks: np.ndarray
    asphalt: np.ndarray
    haze: np.ndarray
    roofs: np.ndarray  # R x C

    @classmethod
    def for_bands(cls, bands: int) -> _Palette:
        matrix = _band_matrix(bands)

        def mapped(spectrum: np.ndarray) -> np.ndarray:
            return (spectrum @ matrix).astype(np.float32)

        return cls(
            mapped(_GREEN_VEGETATION),
            mapped(_DRY_VEGETATION),
            mapped(_SOIL),
            mapped(_EARTHWORKS),
            mapped(_ASPHALT),
            mapped(_HAZE),
            mapped(_ROOFS),
        )


def _render(
    rng: np.random.Generator,
    palette: _Palette,
    roads: np.ndarray,
    buildings: list[_Building],
    date: int | None,
    fields: np.ndarray,
) -> np.ndarray:
    """One date of the scene on the whole canvas: float32 C x H x W, before noise and clipping."""
    shape = roads.shape
    season = np.float32(rng.uniform(0.0, 1.0))
    vegetation = (1 - season) * palette.green + season * palette.dry
    soil_weight = 1.0 / (1.0 + np.exp(-2.5 * (fields[0] + 0.4)))
    texture = 1.0 + 0.08 * fields[1]
    image = (vegetation[:, None, None] + (palette.soil - vegetation)[:, None, None] * soil_weight) * texture
    image = np.where(roads, palette.asphalt[:, None, None] * (1.0 + 0.03 * fields[1]), image)
    for building in buildings:
        if building.earthworks and not building.stands_at(date):
            grown = _grow(building.footprint, 2)
            region = image[:, building.box(2)[0], building.box(2)[1]]
            if region.shape[1:] == grown.shape:  # skip sites too close to the canvas edge
                region[:, grown] = palette.earthworks[:, None] * (1.0 + 0.1 * fields[1][building.box(2)][grown])
    sun = rng.uniform(0.0, 2.0 * np.pi)
    sun_length = rng.uniform(0.4, 1.2)
    shadow = np.zeros(shape, dtype=bool)
    roofs = np.zeros(shape, dtype=bool)
    for building in buildings:
        if not building.stands_at(date):
            continue
        shift = building.height * sun_length * np.array([np.sin(sun), np.cos(sun)])
        top, left, cast = polygon_box(_convex_hull(np.vstack([building.vertices, building.vertices + shift])), shape)
        shadow[top : top + cast.shape[0], left : left + cast.shape[1]] |= cast
        rows, cols = building.box()
        roofs[rows, cols] |= building.footprint
        region = image[:, rows, cols]
        colour = palette.roofs[building.roof] * np.float32(building.brightness)
        region[:, building.footprint] = colour[:, None]
        if building.ridge is not None:
            region[:, building.ridge] = (colour * np.float32(0.82))[:, None]
    image = np.where(shadow & ~roofs, image * np.float32(rng.uniform(0.45, 0.65)), image)
    if rng.random() < 0.35:  # haze: a smooth veil blended towards a bright blue-grey
        veil = np.float32(rng.uniform(0.1, 0.4)) * (0.5 + 0.5 * np.tanh(fields[2] + np.float32(rng.normal())))
        image = image + (palette.haze[:, None, None] - image) * veil
    return image * np.float32(rng.uniform(0.75, 1.25)) + np.float32(rng.uniform(-0.03, 0.03))


def _finish(rng: np.random.Generator, image: np.ndarray, offset: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Crop at ``offset`` of the canvas, add sensor noise, clip to [0, 1]: float32 C x H x W."""
    crop = image[:, offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]]
    noise = rng.standard_normal(crop.shape, dtype=np.float32) * np.float32(rng.uniform(0.004, 0.02))
    return np.clip(crop + noise, 0.0, 1.0)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height < 16 or width < 16:
        raise ValueError(f"synthetic scenes need at least 16 x 16 pixels, got {height} x {width}")
    return height, width


def _scene(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[_Building], np.ndarray]:
    orientation = rng.uniform(0.0, np.pi / 2) if rng.random() < 0.6 else 0.0
    roads = _roads(rng, shape, orientation)
    buildings = _buildings(rng, shape, orientation, roads.copy())
    fields = _smooth_noise(rng, 3, shape, wavelength=rng.uniform(8.0, 24.0))
    return roads, buildings, fields


def synthetic_change_pair(
    rng: np.random.Generator | int,
    size: int | tuple[int, int] = 256,
    bands: int = 3,
    footprints: bool = False,
) -> dict[str, np.ndarray]:
    """Renders a bi-temporal pair with a building-change mask.

    Args:
        rng: NumPy generator or seed; the same seed gives the same pair.
        size: H (= W) or (H, W) in pixels; buildings are 8 to 40 pixels across whatever the size.
        bands: Number of bands C (see the module docstring for what they mean).
        footprints: Also return the building footprints of each date.

    Returns:
        ``{"image1": C x H x W, "image2": C x H x W}`` float32 in [0, 1] and ``"mask"`` uint8 H x W,
        1 where a building appeared or vanished, 0 elsewhere. With ``footprints``, also ``"buildings1"``
        and ``"buildings2"``, uint8 H x W, 1 on the buildings standing at each date, so that
        ``mask == buildings1 ^ buildings2``. The masks are aligned with ``image1``; ``image2`` is
        misregistered by up to two pixels.
    """
    rng = np.random.default_rng(rng)
    height, width = _size(size)
    palette = _Palette.for_bands(bands)
    canvas = (height + 2 * _MARGIN, width + 2 * _MARGIN)
    roads, buildings, fields = _scene(rng, canvas)
    _assign_changes(rng, buildings, height * width)
    first = _render(rng, palette, roads, buildings, 1, fields)
    second = _render(rng, palette, roads, buildings, 2, fields)
    standing = {date: np.zeros(canvas, dtype=np.uint8) for date in (1, 2)}
    for building in buildings:
        rows, cols = building.box()
        for date, layer in standing.items():
            if building.stands_at(date):
                layer[rows, cols] |= building.footprint
    dy, dx = (int(v) for v in rng.integers(-_MARGIN, _MARGIN + 1, size=2))
    inner = (slice(_MARGIN, _MARGIN + height), slice(_MARGIN, _MARGIN + width))
    out = {
        "image1": _finish(rng, first, (_MARGIN, _MARGIN), (height, width)),
        "image2": _finish(rng, second, (_MARGIN + dy, _MARGIN + dx), (height, width)),
        "mask": np.ascontiguousarray((standing[1] ^ standing[2])[inner]),
    }
    if footprints:
        out["buildings1"] = np.ascontiguousarray(standing[1][inner])
        out["buildings2"] = np.ascontiguousarray(standing[2][inner])
    return out


def synthetic_segmentation_scene(
    rng: np.random.Generator | int, size: int | tuple[int, int] = 256, bands: int = 3
) -> dict[str, np.ndarray]:
    """Renders one date with a land-cover mask.

    Args:
        rng: NumPy generator or seed; the same seed gives the same scene.
        size: H (= W) or (H, W) in pixels.
        bands: Number of bands C.

    Returns:
        ``{"image": C x H x W float32 in [0, 1], "mask": uint8 H x W}`` with classes
        0 background, 1 building, 2 road (:data:`SEGMENTATION_CLASSES`).
    """
    rng = np.random.default_rng(rng)
    shape = _size(size)
    palette = _Palette.for_bands(bands)
    roads, buildings, fields = _scene(rng, shape)
    image = _render(rng, palette, roads, buildings, None, fields)
    mask = np.where(roads, 2, 0).astype(np.uint8)
    for building in buildings:
        rows, cols = building.box()
        mask[rows, cols][building.footprint] = 1
    return {"image": _finish(rng, image, (0, 0), shape), "mask": mask}
