"""What a prediction writes and where it runs: option objects beside :class:`~mantis.inference.spec.WindowSpec`.

Every prediction entry point (``predict_raster`` and ``predict_folder``, for rasters, pairs and volumes alike,
and the ranks of ``mantis predict --devices``) takes the same keywords, typed once in
:class:`PredictArgs`, and turns them into one :class:`PredictOptions`: the windows (:class:`WindowSpec`), the
outputs (:class:`OutputSpec`), the device and the progress bar. ``mantis predict`` builds the same object from
its parsed arguments (:meth:`PredictOptions.from_args`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

from mantis.inference.errors import InputError
from mantis.inference.spec import FIELDS as WINDOW_FIELDS
from mantis.inference.spec import Precision, WindowSpec
from mantis.inference.vector import VectorOptions

PRODUCTS: dict[str, str] = {
    "class": "segmentation",
    "prob": "segmentation",
    "boundary": "boundary",
    "distance": "distance",
}
PROB_DTYPES = ("uint8", "float32")
#: uint8 probabilities are ``round(p * 254)`` (rasters and volumes alike); 255 is nodata.
UINT8_SCALE = 254
FORMATS = ("auto", "tif", "png")


@dataclass(frozen=True)
class OutputSpec:
    """What a prediction writes.

    Args:
        outputs: any of ``class`` (uint8 class map), ``prob`` (class probabilities, K bands), ``boundary``,
            ``distance`` (the multitask outputs, K bands).
        prob_dtype: ``uint8`` (``round(p * 254)``, 255 nodata; GeoTIFFs and NIfTI files carry the scale) or
            ``float32`` (NaN nodata), for ``prob``/``boundary``/``distance``.
        output_format: rasters only: ``auto`` (PNG for PNG/JPEG inputs, else GeoTIFF), ``tif`` or ``png``.
        overwrite: replace existing outputs instead of refusing.
        skip_existing: leave out inputs whose outputs all exist already (resume an interrupted run).
        vector: rasters only: also write the regions of the class map as polygons
            (:class:`~mantis.inference.vector.VectorOptions`, or its format ``"gpkg"``/``"geojson"``), under
            the product name ``polygons``.
    """

    outputs: tuple[str, ...] = ("class",)
    prob_dtype: str = "uint8"
    output_format: str = "auto"
    overwrite: bool = False
    skip_existing: bool = False
    vector: VectorOptions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))  # lists from configs: hashable, frozen
        if isinstance(self.vector, str):
            object.__setattr__(self, "vector", VectorOptions(format=self.vector))  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuse unknown products, dtypes and formats in one line each.

        Raises:
            InputError: naming the value and the choices.
        """
        unknown = [o for o in self.outputs if o not in PRODUCTS]
        if unknown or not self.outputs:
            raise InputError(f"unknown output {unknown!r}; choose from {', '.join(PRODUCTS)}")
        if self.prob_dtype not in PROB_DTYPES:
            raise InputError(f"unknown probability dtype {self.prob_dtype!r}; choose from {', '.join(PROB_DTYPES)}")
        if self.output_format not in FORMATS:
            raise InputError(f"unknown output format {self.output_format!r}; choose from {', '.join(FORMATS)}")

    @property
    def fields(self) -> list[str]:
        """The model outputs the products are made of, in order, without repeats."""
        return list(dict.fromkeys(PRODUCTS[p] for p in self.outputs))


OUTPUT_FIELDS = frozenset(f.name for f in dataclasses.fields(OutputSpec))
DEFAULT_OUTPUT = OutputSpec()


class PredictArgs(TypedDict, total=False):
    """The keywords of every prediction entry point (all optional)."""

    spec: WindowSpec | None  # the windows; the window keywords below change its fields
    output: OutputSpec | None  # the outputs; the output keywords below change its fields
    device: torch.device | str | None  # where the model runs (default: the model's device)
    progress: bool  # show a progress bar (default True)
    # fields of OutputSpec
    outputs: Sequence[str]
    prob_dtype: str
    output_format: str
    overwrite: bool
    skip_existing: bool
    vector: VectorOptions | str | None
    # fields of WindowSpec
    window: int | Sequence[int]
    stride: int | Sequence[int] | None
    overlap: float | None
    pad: int | Sequence[int] | None
    blend: str
    sigma_scale: float
    batch_size: int
    tta: bool
    precision: Precision
    cuda_graphs: bool


@dataclass(frozen=True)
class PredictOptions:
    """Every setting of a prediction but the model and the files: windows, outputs, device, progress bar."""

    window: WindowSpec = WindowSpec()
    output: OutputSpec = OutputSpec()
    device: torch.device | str | None = None
    progress: bool = True

    @classmethod
    def build(cls, **options: Any) -> PredictOptions:
        """The options from the keywords of :class:`PredictArgs`: ``spec`` and ``output`` (or their
        defaults) with the named fields replaced.

        Raises:
            TypeError: a keyword that is none of them, named in the message.
        """
        known = {"spec", "output", "device", "progress"} | OUTPUT_FIELDS | WINDOW_FIELDS
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown prediction option {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        window = WindowSpec.build(options.get("spec"), **{k: v for k, v in options.items() if k in WINDOW_FIELDS})
        output = options.get("output") or OutputSpec()
        changes = {k: v for k, v in options.items() if k in OUTPUT_FIELDS}
        if changes:
            output = dataclasses.replace(output, **changes)
        return cls(window, output, options.get("device"), bool(options.get("progress", True)))

    @classmethod
    def from_args(cls, args: Any, window: WindowSpec, vector: VectorOptions | None, device: str) -> PredictOptions:
        """The options of ``mantis predict``'s parsed arguments (windows and polygons already parsed)."""
        output = OutputSpec(
            outputs=tuple(args.outputs),
            prob_dtype=args.prob_dtype,
            output_format=args.format,
            overwrite=args.overwrite,
            skip_existing=args.skip_existing,
            vector=vector,
        )
        return cls(window, output, device, not args.no_progress)

    def keywords(self) -> PredictArgs:
        """These options as the keywords of the prediction functions."""
        return PredictArgs(spec=self.window, output=self.output, device=self.device, progress=self.progress)

    def replace(self, **changes: Any) -> PredictOptions:
        """A copy with the named fields (``window``, ``output``, ``device``, ``progress``) replaced."""
        return dataclasses.replace(self, **changes)


__all__ = ["DEFAULT_OUTPUT", "FORMATS", "PROB_DTYPES", "PRODUCTS", "OutputSpec", "PredictArgs", "PredictOptions"]
