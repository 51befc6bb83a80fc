"""Networks: an explicit registry of builders (DynUNet, SegResNet, Mask R-CNN)."""
