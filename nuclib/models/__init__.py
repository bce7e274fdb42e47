"""Model factories: U-Net, MobileNetV2 U-Net, Attention U-Net, MultiResUNet, UNet 3+,
DeepLabV3+, Swin-UNet and EfficientNet U-Net.

Every factory is a plain function with keyword arguments that returns a
``keras.Model`` with one of the heads of ``nuclib.heads.HEADS``; ``FACTORIES``
maps factory names (as used in training recipes) to the functions.
``required_multiple(model)`` gives the multiple the input sides must have.

Example:
    >>> from nuclib import models
    >>> model = models.unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
    >>> model = models.FACTORIES["attention_unet"](depth=2, filters=8)
    >>> wider = models.widen(model, models.attention_unet(depth=2, filters=16))
"""

from nuclib.models.attention_unet import attention_unet
from nuclib.models.deeplabv3plus import deeplabv3plus
from nuclib.models.efficientnet_unet import efficientnet_unet
from nuclib.models.mobilenet_unet import mobilenet_unet
from nuclib.models.multires_unet import multires_unet
from nuclib.models.swin_unet import swin_unet
from nuclib.models.unet import unet
from nuclib.models.unet3plus import unet3plus, unet3plus_deep_supervision
from nuclib.models.utils import check_spatial_shape, copy_backbone, predict, required_multiple
from nuclib.models.widening import widen

__all__ = [
    "unet",
    "mobilenet_unet",
    "attention_unet",
    "multires_unet",
    "unet3plus",
    "unet3plus_deep_supervision",
    "deeplabv3plus",
    "swin_unet",
    "efficientnet_unet",
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
    "unet3plus": unet3plus,
    "deeplabv3plus": deeplabv3plus,
    "swin_unet": swin_unet,
    "efficientnet_unet": efficientnet_unet,
}
