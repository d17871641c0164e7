"""Import every model family so that their ``@register_model`` decorators run."""

from mantis.models import fractal_resunet, mantis_cd, resunet_a, simple  # noqa: F401
