"""Zhang et al., attention residual learning (ARL-CNN) on ISIC 2017 melanoma."""
