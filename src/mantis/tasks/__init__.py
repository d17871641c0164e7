"""Lightning tasks: change detection, segmentation, classification and regression.

Each holds its network as ``self.model`` (built by ``mantis.create_model``) and saves the hyper-parameters
that inference needs (``model``, ``model_kwargs``, ``task``, ``band_mean``, ``band_std``).
"""

from mantis.tasks.base import BaseTask
from mantis.tasks.change_detection import ChangeDetectionTask
from mantis.tasks.classification import ClassificationTask
from mantis.tasks.dense import DenseTask
from mantis.tasks.regression import RegressionTask
from mantis.tasks.segmentation import SegmentationTask

__all__ = ["BaseTask", "ChangeDetectionTask", "ClassificationTask", "DenseTask", "RegressionTask", "SegmentationTask"]
