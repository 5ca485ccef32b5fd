"""Downstream evaluation helpers: the dataset-bias sets (``cropped_boxes``) and the host's VOC07
SVM flow run with vissl_ext's fixes (``train_svm``)."""
