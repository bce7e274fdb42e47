"""Model factories: U-Net, MobileNetV2 U-Net, Attention U-Net, MultiResUNet, UNet 3+,
DeepLabV3+, Swin-UNet and EfficientNet U-Net.

Every factory is a plain function with keyword arguments that returns a
``keras.Model`` with one of the heads of ``nuclib.heads.HEADS``; ``FACTORIES``
maps factory names (as used in training recipes) to the functions.
``required_multiple(model)`` gives the multiple the input sides must have.
``SMALL_ARGS`` holds the arguments of the smallest sensible network of each
factory (for tests, smoke runs and examples), ``SMALL_MULTIPLES`` the side
multiple each of those needs.

Example:
    >>> from nuclib import models
    >>> model = models.unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
    >>> model = models.FACTORIES["attention_unet"](depth=2, filters=8)
    >>> wider = models.widen(model, models.attention_unet(depth=2, filters=16))
    >>> tiny = models.FACTORIES["swin_unet"](**models.SMALL_ARGS["swin_unet"])
    >>> models.required_multiple(tiny) == models.SMALL_MULTIPLES["swin_unet"]
    True
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
    "SMALL_ARGS",
    "SMALL_MULTIPLES",
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

# The smallest sensible network of each factory: a second or two to build (EfficientNetB0's
# fixed encoder about three), for tests, smoke runs and the examples' fast modes. One table,
# so that the tests, ``examples/compare_models.py --fast`` and
# ``benchmarks/architectures.py --quick`` build the same networks. Copy an entry before
# changing it: ``{**SMALL_ARGS[name], "head": "binary"}``.
SMALL_ARGS = {
    "unet": dict(depth=2, filters=4),
    "mobilenet_unet": dict(alpha=0.35, decoder_filters=(16, 8, 8, 4)),
    "attention_unet": dict(depth=2, filters=4),
    "multires_unet": dict(depth=2, filters=4),
    "unet3plus": dict(depth=2, filters=4),
    "deeplabv3plus": dict(filters=4, aspp_filters=8, low_level_filters=4, decoder_filters=8),
    "swin_unet": dict(patch_size=2, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                      window_size=4),
    "efficientnet_unet": dict(encoder="EfficientNetB0", decoder_filters=(16, 8, 8, 4, 4)),
}
# The side multiple (``required_multiple``) of each ``SMALL_ARGS`` network: its inputs'
# height and width must be multiples of it (2**depth, the MobileNetV2 and EfficientNet
# stride 32, DeepLabV3+'s output stride 16, Swin's patch * 2**(stages - 1) * window).
SMALL_MULTIPLES = {
    "unet": 4,
    "mobilenet_unet": 32,
    "attention_unet": 4,
    "multires_unet": 4,
    "unet3plus": 4,
    "deeplabv3plus": 16,
    "swin_unet": 16,
    "efficientnet_unet": 32,
}
