"""Connected regions of a class map that arrives strip by strip, as polygons in pixel coordinates.

Each strip is labelled on its own (:func:`scipy.ndimage.label`), its regions polygonised
(:func:`rasterio.features.shapes`) and their pixels, probability sum and maximum counted. Regions that touch
across the border between two strips are joined (a union-find over region ids), and a region is handed out
as soon as no later strip can reach it: when it has no pixel in the last row seen. Memory therefore holds
only the regions that touch the current border, never the whole map.

Polygon pieces are kept in pixel coordinates (x = column, y = row, integers), so the pieces of one region
from two strips share their edges exactly and their union is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

#: Pieces of an open region are merged once there are this many (bounds the memory of long regions).
MERGE_PIECES = 16


@dataclass
class Region:
    """One connected region of one class: its pixels, probabilities and outline (pixel coordinates).

    Attributes:
        class_id: the class of its pixels.
        pixels: how many pixels it holds.
        prob_sum: the sum of its class's probability over its pixels.
        prob_max: the largest such probability.
        first: (row, column) of its first pixel in raster order (top row, then leftmost).
        pieces: shapely polygons whose union is the region (one when handed out).
    """

    class_id: int
    pixels: int
    prob_sum: float
    prob_max: float
    first: tuple[int, int]
    pieces: list[Any] = field(default_factory=list)

    def absorb(self, other: Region) -> None:
        """Take in a region it touches (the same object seen in another strip)."""
        self.pixels += other.pixels
        self.prob_sum += other.prob_sum
        self.prob_max = max(self.prob_max, other.prob_max)
        self.first = min(self.first, other.first)
        self.pieces += other.pieces
        if len(self.pieces) > MERGE_PIECES:
            self.pieces = [_union(self.pieces)]

    def outline(self) -> Any:
        """The region's outline: a shapely Polygon or MultiPolygon (pieces touching at corners)."""
        return _union(self.pieces)


def _union(pieces: Sequence[Any]) -> Any:
    import shapely

    return pieces[0] if len(pieces) == 1 else shapely.union_all(list(pieces))


class StripRegions:
    """Builds the connected regions of chosen classes from a class map given as consecutive strips.

    Args:
        classes: class ids whose regions are wanted (others, and nodata, are background).
        connectivity: 4 (edges) or 8 (edges and corners), as :func:`mantis.objects.label_objects`.
    """

    def __init__(self, classes: Sequence[int], connectivity: int = 8) -> None:
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        self.classes = [int(c) for c in classes]
        self.connectivity = connectivity
        self.structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
        self.open: dict[int, Region] = {}  # regions that touch the last row seen, by id
        self.last_ids: np.ndarray | None = None  # region id of each pixel of the last row (0: none)
        self.last_classes: np.ndarray | None = None  # class id of each pixel of the last row
        self.next_id = 1
        self.row = 0

    def add(self, classes: np.ndarray, probabilities: np.ndarray) -> list[Region]:
        """Take the next strip: n x W class ids and K x n x W class probabilities (rows follow the last strip).

        With K = 1 the single band is the probability of class 1 (class 0's is its complement).

        Returns:
            The regions completed by this strip (they cannot grow any more), in raster order of first pixel.
        """
        from affine import Affine
        from rasterio.features import shapes

        n, width = classes.shape
        if n == 0:
            return []
        local = np.zeros((n, width), dtype=np.int32)
        regions: dict[int, Region] = {}
        base = self.next_id
        count = 0
        for c in self.classes:
            labels, m = ndimage.label(classes == c, structure=self.structure)
            if not m:
                continue
            inside = labels > 0
            local[inside] = labels[inside] + count
            prob = _class_probability(probabilities, c)
            index = np.arange(1, m + 1)
            pixels = np.bincount(labels.ravel(), minlength=m + 1)[1:]
            sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=m + 1)[1:]
            maxima = ndimage.maximum(prob, labels, index)
            # first pixel of each region in raster order: labels are numbered in that order by ndimage
            flat = np.flatnonzero(labels.ravel())
            firsts = flat[np.unique(labels.ravel()[flat], return_index=True)[1]]
            for k in range(m):
                r, col = divmod(int(firsts[k]), width)
                regions[base + count + k] = Region(
                    c, int(pixels[k]), float(sums[k]), float(maxima[k]), (self.row + r, col)
                )
            count += m
        self.next_id = base + count
        if count:
            # Polygons in pixel coordinates of the whole raster: integers, exact in floating point.
            import shapely.geometry

            transform = Affine.translation(0, self.row)
            for geom, value in shapes(local, mask=local > 0, connectivity=4, transform=transform):
                regions[base + int(value) - 1].pieces.append(shapely.geometry.shape(geom))
        ids = np.where(local > 0, local.astype(np.int64) + (base - 1), 0)
        parent: dict[int, int] = {}
        if self.last_ids is not None and self.last_classes is not None:
            self._join(self.last_ids, ids[0], np.stack([self.last_classes, classes[0]]), parent, regions)
        done = self._close(ids[-1], parent, regions)
        self.last_classes = classes[-1].copy()
        self.row += n
        return done

    def finish(self) -> list[Region]:
        """The regions still open after the last strip, in raster order of first pixel."""
        done = sorted(self.open.values(), key=lambda r: r.first)
        self.open, self.last_ids, self.last_classes = {}, None, None
        return done

    def _join(
        self,
        above: np.ndarray,
        below: np.ndarray,
        classes: np.ndarray,
        parent: dict[int, int],
        regions: dict[int, Region],
    ) -> None:
        """Join regions of the previous strip's last row with those of this strip's first row they touch.

        ``classes`` holds the class ids of the two rows (2 x W): only regions of one class join.
        """
        up, down = classes
        pairs = [(slice(None), slice(None))]
        if self.connectivity == 8:
            pairs += [(slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))]
        for i, j in pairs:
            a, b = above[i], below[j]
            touch = (a > 0) & (b > 0) & (up[i] == down[j])
            for x, y in {(int(p), int(q)) for p, q in zip(a[touch], b[touch])}:
                self._unite(x, y, parent, regions)

    @staticmethod
    def _find(rid: int, parent: dict[int, int]) -> int:
        root = rid
        while parent.get(root, root) != root:
            root = parent[root]
        while rid != root:  # path compression
            parent[rid], rid = root, parent.get(rid, rid)
        return root

    def _unite(self, x: int, y: int, parent: dict[int, int], regions: dict[int, Region]) -> None:
        rx, ry = self._find(x, parent), self._find(y, parent)
        if rx == ry:
            return
        keep, gone = min(rx, ry), max(rx, ry)  # the older id survives: ids follow raster order
        pools = (self.open, regions)
        target = next(p for p in pools if keep in p)
        source = next(p for p in pools if gone in p)
        target[keep].absorb(source.pop(gone))
        parent[gone] = keep

    def _close(self, last_row: np.ndarray, parent: dict[int, int], regions: dict[int, Region]) -> list[Region]:
        """Hand out every region with no pixel in ``last_row``; keep the others, by their surviving ids."""
        everything = {**self.open, **regions}
        roots = np.zeros_like(last_row)
        if last_row.any():
            unique, inverse = np.unique(last_row, return_inverse=True)
            mapped = np.array([self._find(int(u), parent) if u else 0 for u in unique], dtype=np.int64)
            roots = mapped[inverse].reshape(last_row.shape)
        still_open = {int(r) for r in np.unique(roots) if r}
        self.open = {rid: everything[rid] for rid in still_open}
        self.last_ids = roots
        return sorted((r for rid, r in everything.items() if rid not in still_open), key=lambda r: r.first)


def _class_probability(probabilities: np.ndarray, class_id: int) -> np.ndarray:
    """n x W probability of ``class_id`` from K x n x W probabilities (K = 1: the band is class 1's)."""
    if probabilities.shape[0] == 1:
        return probabilities[0] if class_id == 1 else 1.0 - probabilities[0]
    return probabilities[class_id]
