"""SE-LCN: segmentation, lesion-area extraction, symmetry net, its Grad-CAM++ map into the classifier."""
