"""Polygons of a predicted class map, with attributes, written to GeoPackage or GeoJSON as strips complete.

Each connected region of a chosen class (:mod:`mantis.inference.regions`) becomes one feature: a
MultiPolygon in the raster's CRS (pixel coordinates, x = column and y = row, when the raster has no
georeference, e.g. PNG/JPEG) with ``id``, ``class_id``, ``class_name``, ``area`` (map units, of the polygon
written), ``area_px`` (pixels of the region), ``prob_mean`` and ``prob_max`` (the class's probability over
the region's pixels). Needs the ``vector`` extra (shapely, pyogrio).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mantis.inference.errors import InputError
from mantis.inference.regions import Region, StripRegions

VectorFormat = Literal["gpkg", "geojson"]
VECTOR_FORMATS: tuple[str, ...] = ("gpkg", "geojson")
AREA_UNITS: tuple[str, ...] = ("pixels", "map")
DRIVERS = {"gpkg": "GPKG", "geojson": "GeoJSON"}
SUFFIXES = {"gpkg": ".gpkg", "geojson": ".geojson"}
VECTOR_SUFFIXES = tuple(SUFFIXES.values())
#: GeoPackage features are appended in batches of this many (GeoJSON is written once: GDAL rewrites it to append).
BATCH_FEATURES = 5000
FIELDS = ("id", "class_id", "class_name", "area", "area_px", "prob_mean", "prob_max")
INSTALL_HINT = "pip install 'mantis-cd[vector]' (shapely and pyogrio)"


@dataclass(frozen=True)
class VectorOptions:
    """What ``--vector`` writes and how the polygons are cleaned.

    Args:
        format: ``gpkg`` (GeoPackage, streamed to disk) or ``geojson`` (written at the end).
        classes: class ids to polygonise; ``None``: every class but 0 (change for change detection).
        min_area: regions smaller than this are left out (in ``area_units``).
        area_units: ``pixels`` or ``map`` (square map units, e.g. m² in a UTM CRS) for ``min_area`` and
            ``fill_holes``.
        fill_holes: holes smaller than this are filled (in ``area_units``; ``inf``: every hole; 0: none).
        simplify: Douglas-Peucker tolerance in map units, topology of each polygon kept (0: none).
        connectivity: 8 (pixels touching at corners form one region, as in ``mantis evaluate``) or 4.
    """

    format: VectorFormat = "gpkg"
    classes: tuple[int, ...] | None = None
    min_area: float = 0.0
    area_units: Literal["pixels", "map"] = "pixels"
    fill_holes: float = 0.0
    simplify: float = 0.0
    connectivity: int = 8

    def __post_init__(self) -> None:
        if self.format not in VECTOR_FORMATS:
            raise InputError(f"unknown vector format {self.format!r}; choose from {', '.join(VECTOR_FORMATS)}")
        if self.area_units not in AREA_UNITS:
            raise InputError(f"unknown area units {self.area_units!r}; choose from {', '.join(AREA_UNITS)}")
        for name in ("min_area", "fill_holes", "simplify"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise InputError(f"--vector-{name.replace('_', '-')} must be 0 or more, got {value}")
        if self.connectivity not in (4, 8):
            raise InputError(f"--vector-connectivity must be 4 or 8, got {self.connectivity}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
            if not self.classes or any(not 0 <= c < 255 for c in self.classes):
                raise InputError(f"--vector-classes must be class ids in [0, 255), got {list(self.classes)}")

    @property
    def suffix(self) -> str:
        """The file suffix of the format."""
        return SUFFIXES[self.format]

    def target_classes(self, num_classes: int) -> list[int]:
        """The class ids to polygonise for a model of ``num_classes`` classes (checked against it)."""
        if self.classes is None:
            return list(range(1, max(num_classes, 2)))
        return list(self.classes)


def require_libraries() -> None:
    """Refuse ``--vector`` in one line when shapely or pyogrio are missing."""
    try:
        import pyogrio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError:
        raise InputError(f"--vector needs the vector extra: {INSTALL_HINT}") from None


def check_crs(options: VectorOptions, crs: Any, path: Path) -> None:
    """Refuse GeoJSON for a CRS without an EPSG code: GDAL would drop it and readers would assume WGS 84."""
    if options.format == "geojson" and crs is not None and not crs.to_epsg():
        raise InputError(f"{path}: its CRS has no EPSG code, which GeoJSON cannot record; use --vector gpkg")


def pixel_area(transform: Any) -> float:
    """Area of one pixel in square map units (1 without a transform: pixel coordinates)."""
    if transform is None:
        return 1.0
    return abs(transform.a * transform.e - transform.b * transform.d)


def _fill_holes(geometry: Any, max_hole_px: float) -> Any:
    """``geometry`` (pixel coordinates) with every hole of fewer than ``max_hole_px`` pixels filled."""
    import shapely

    parts = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        holes = [ring for ring in polygon.interiors if shapely.Polygon(ring).area >= max_hole_px]
        parts.append(shapely.Polygon(polygon.exterior, holes))
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def region_geometries(
    regions: Sequence[Region], options: VectorOptions, transform: Any, px_area: float
) -> tuple[list[Region], np.ndarray]:
    """The regions large enough to keep, and their feature geometries in map coordinates (MultiPolygons).

    Every step but hole filling runs on the whole batch at once (shapely's array functions).
    """
    import shapely

    scale = 1.0 if options.area_units == "pixels" else px_area  # area units per pixel
    kept = [r for r in regions if r.pixels * scale >= options.min_area]
    geometries = np.empty(len(kept), dtype=object)
    geometries[:] = [r.outline() for r in kept]
    if not kept:
        return kept, geometries
    # Tolerance 0 drops only the collinear vertices the strip borders leave on straight edges.
    geometries = shapely.simplify(geometries, 0.0, preserve_topology=True)
    if options.fill_holes > 0:
        geometries[:] = [_fill_holes(g, options.fill_holes / scale) for g in geometries]
    if transform is not None:
        t = transform
        matrix = np.array([[t.a, t.d], [t.b, t.e]])
        geometries = shapely.transform(geometries, lambda xy: xy @ matrix + np.array([t.c, t.f]))
    if options.simplify > 0:
        geometries = shapely.simplify(geometries, options.simplify, preserve_topology=True)
    parts, index = shapely.get_parts(geometries, return_index=True)
    geometries = shapely.multipolygons(parts, indices=index)
    # Exterior rings counter-clockwise, holes clockwise: the right-hand rule of RFC 7946 (GeoJSON).
    return kept, shapely.orient_polygons(geometries, exterior_cw=False)


class VectorWriter:
    """Appends features (regions with attributes) to one GeoPackage or GeoJSON file; ``close`` finishes it.

    Args:
        path: the file to write (a temporary name: the driver comes from ``options.format``).
        layer: the layer name (the final file's stem).
        options: the vector options.
        class_names: a name for each class id.
        transform: the raster's affine transform (``None``: pixel coordinates).
        crs: the raster's CRS (rasterio ``CRS``) or ``None``.
    """

    def __init__(
        self,
        path: Path,
        layer: str,
        options: VectorOptions,
        class_names: Sequence[str],
        transform: Any,
        crs: Any,
    ) -> None:
        self.path, self.layer, self.options = path, layer, options
        self.class_names = list(class_names)
        self.transform = transform
        self.crs = _crs_string(crs)
        self.px_area = pixel_area(transform)
        self.rows: list[tuple[Any, ...]] = []
        self.written = 0
        self.batch = BATCH_FEATURES if options.format == "gpkg" else math.inf

    def add(self, regions: Sequence[Region]) -> None:
        """Turn completed regions into features; write them once a batch is full."""
        import shapely

        kept, geometries = region_geometries(regions, self.options, self.transform, self.px_area)
        for region, geometry, area in zip(kept, geometries, shapely.area(geometries)):
            name = self.class_names[region.class_id] if region.class_id < len(self.class_names) else ""
            self.rows.append(
                (
                    geometry,
                    self.written + len(self.rows) + 1,
                    region.class_id,
                    name,
                    float(area),
                    region.pixels,
                    region.prob_sum / region.pixels,
                    region.prob_max,
                )
            )
        if len(self.rows) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        import shapely
        from pyogrio.raw import write

        if not self.rows and self.written:
            return
        columns = list(zip(*self.rows)) if self.rows else [()] * (len(FIELDS) + 1)
        dtypes = (np.int64, np.int32, object, np.float64, np.int64, np.float64, np.float64)
        values = [np.asarray(col, dtype=dtype) for col, dtype in zip(columns[1:], dtypes)]
        geometry = shapely.to_wkb(np.asarray(columns[0], dtype=object)) if self.rows else np.array([], dtype=object)
        write(
            str(self.path),
            geometry,
            values,
            fields=list(FIELDS),
            layer=self.layer,
            driver=DRIVERS[self.options.format],
            geometry_type="MultiPolygon",
            crs=self.crs,
            append=self.written > 0,
        )
        self.written += len(self.rows)
        self.rows = []

    def close(self) -> None:
        """Write the features left (an empty layer, with its fields and CRS, when there are none)."""
        self._flush()

    def abort(self) -> None:
        """Remove the files SQLite may leave beside a GeoPackage being written."""
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def _crs_string(crs: Any) -> str | None:
    """The CRS as GDAL takes it: ``EPSG:n`` when it has a code, else its WKT."""
    if crs is None:
        return None
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    return f"EPSG:{epsg}" if epsg else str(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def vector_path(output_dir: Path, stem: str, options: VectorOptions) -> Path:
    """Where the polygons of the input ``stem`` go: ``<output_dir>/<stem>_polygons.<gpkg|geojson>``."""
    return output_dir / f"{stem}_polygons{options.suffix}"


def default_class_names(num_classes: int, pair: bool) -> list[str]:
    """Class names when the checkpoint has none: ``no change``/``change`` for a two-class change detector."""
    if pair and num_classes <= 2:
        return ["no change", "change"]
    return [f"class {k}" for k in range(max(num_classes, 2))]


class PolygonStream:
    """Strips of a class map in, features out: :class:`StripRegions` feeding a :class:`VectorWriter`.

    Args:
        path: the file to write (a temporary name).
        layer: the layer name.
        options: the vector options.
        header: the raster's header (its ``transform`` and ``crs``).
        class_names: a name per class (``None``: :func:`default_class_names`).
        pair: the model is a change detector (for the default names).
    """

    def __init__(
        self,
        path: Path,
        layer: str,
        options: VectorOptions,
        header: Any,
        class_names: Sequence[str] | None = None,
        pair: bool = False,
    ) -> None:
        self.path, self.layer, self.options, self.header = path, layer, options, header
        self.class_names, self.pair = class_names, pair
        self.regions: StripRegions | None = None
        self.writer: VectorWriter | None = None

    def _start(self, num_classes: int) -> tuple[StripRegions, VectorWriter]:
        """Regions and writer, made once the number of classes K is known (from the first strip)."""
        k = max(num_classes, 2)  # one probability band: classes 0 and 1
        wrong = [c for c in self.options.target_classes(k) if c >= k]
        if wrong:
            raise InputError(f"--vector-classes {wrong[0]}: the model predicts classes 0 to {k - 1}")
        names = list(self.class_names) if self.class_names else default_class_names(k, self.pair)
        regions = StripRegions(self.options.target_classes(k), self.options.connectivity)
        writer = VectorWriter(self.path, self.layer, self.options, names, self.header.transform, self.header.crs)
        return regions, writer

    def add(self, classes: np.ndarray, probabilities: np.ndarray) -> None:
        """The next rows: n x W class ids (255 nodata) and K x n x W probabilities."""
        if self.regions is None or self.writer is None:
            self.regions, self.writer = self._start(probabilities.shape[0])
        self.writer.add(self.regions.add(classes, probabilities))

    def close(self) -> None:
        """Write the regions still open and finish the file."""
        if self.regions is None or self.writer is None:
            self.regions, self.writer = self._start(2)
        self.writer.add(self.regions.finish())
        self.writer.close()

    def abort(self) -> None:
        """Give up: remove what SQLite may leave beside the temporary file."""
        if self.writer is not None:
            self.writer.abort()
