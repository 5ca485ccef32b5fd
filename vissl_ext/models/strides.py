"""Output stride of each ResNet feature (input pixels per feature-map cell): what ROIAlign's
spatial scale is, in training (the region term) and in the offline tracker alike."""

FEATURE_STRIDE = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
