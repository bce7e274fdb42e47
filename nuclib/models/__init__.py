"""Model factories: U-Net, MobileNetV2 U-Net, Attention U-Net, MultiResUNet.

Every factory is a plain function with keyword arguments that returns a
``keras.Model`` with a ``"binary"`` or ``"three_class"`` head.

Example:
    >>> from nuclib import models
    >>> model = models.unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
"""

from nuclib.models.unet import unet
from nuclib.models.utils import check_spatial_shape, predict, required_multiple

__all__ = ["unet", "predict", "required_multiple", "check_spatial_shape", "FACTORIES"]

FACTORIES = {"unet": unet}
