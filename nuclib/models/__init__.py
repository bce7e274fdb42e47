"""Model factories: U-Net, MobileNetV2 U-Net, Attention U-Net, MultiResUNet.

Every factory is a plain function with keyword arguments that returns a
``keras.Model`` with a ``"binary"`` or ``"three_class"`` head; ``FACTORIES``
maps factory names (as used in training recipes) to the functions.

Example:
    >>> from nuclib import models
    >>> model = models.unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
    >>> model = models.FACTORIES["attention_unet"](depth=2, filters=8)
    >>> wider = models.widen(model, models.attention_unet(depth=2, filters=16))
"""

from nuclib.models.attention_unet import attention_unet
from nuclib.models.mobilenet_unet import mobilenet_unet
from nuclib.models.multires_unet import multires_unet
from nuclib.models.unet import unet
from nuclib.models.utils import check_spatial_shape, copy_backbone, predict, required_multiple
from nuclib.models.widening import widen

__all__ = [
    "unet",
    "mobilenet_unet",
    "attention_unet",
    "multires_unet",
    "predict",
    "required_multiple",
    "check_spatial_shape",
    "widen",
    "copy_backbone",
    "FACTORIES",
]

FACTORIES = {
    "unet": unet,
    "mobilenet_unet": mobilenet_unet,
    "attention_unet": attention_unet,
    "multires_unet": multires_unet,
}
