""""Going Smaller": SGE, spatial, S2-MLP and S2-CBAM EfficientNet-B3 on ISIC 2019 + 2020."""
